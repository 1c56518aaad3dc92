-- Connected components: labels equal skimage.measure.label / scipy.ndimage.label (full connectivity),
-- keep-largest equals nnU-Net's remove_all_but_largest_component_from_segmentation.
local lunet = require "lunet"
local core = lunet.core
local npy = core.npz.read_npy
local FIX = "spec/fixtures/eval/cc/"

describe("connected components", function()
  for _, name in ipairs({ "rand3d", "sparse3d", "dense3d", "rand2d", "diagonals" }) do
    it("labels " .. name .. " exactly as skimage/scipy", function()
      local mask = npy(FIX .. name .. "_mask.npy")
      local want = npy(FIX .. name .. "_labels.npy")
      local got, n, sizes = core.eval.cc_label(mask, { threads = 2 })
      assert.are.equal("i32", got.dtype)
      assert.are.same(want.shape, got.shape)
      assert.are.equal(want:bytes(), got:bytes())
      local w = want:flat()
      local maxl, counts = 0, {}
      for i = 1, #w do
        if w[i] > maxl then maxl = w[i] end
        if w[i] > 0 then counts[w[i]] = (counts[w[i]] or 0) + 1 end
      end
      assert.are.equal(maxl, n)
      for l = 1, n do assert.are.equal(counts[l], sizes[l]) end
    end)
  end

  it("6-connectivity splits diagonal neighbours", function()
    local mask = npy(FIX .. "diagonals_mask.npy")
    local _, n26 = core.eval.cc_label(mask)
    local _, n6 = core.eval.cc_label(mask, { connectivity = 6 })
    assert.are.equal(3, n26)
    assert.are.equal(5, n6)
  end)

  local seg = npy(FIX .. "seg.npy")
  for key, lr in pairs({ fg = { 1, 2, 3 }, l1 = 1, l2 = 2, l3 = 3, r12 = { 1, 2 } }) do
    it("keep_largest(" .. key .. ") equals nnU-Net", function()
      local want = npy(FIX .. "seg_keep_" .. key .. ".npy")
      local got = lunet.postprocess.keep_largest(seg, lr)
      assert.are.same(want.shape, got.shape)
      assert.are.equal(want:bytes(), got:bytes())
    end)
  end

  it("keeps every component of the largest size (ties)", function()
    local got = lunet.postprocess.keep_largest(npy(FIX .. "tie.npy"), { 1 })
    assert.are.equal(npy(FIX .. "tie_keep.npy"):bytes(), got:bytes())
  end)

  it("rejects multi-channel input and bad connectivity with messages", function()
    local t = lunet.tensor({ 1, 0, 1, 0, 1, 0, 1, 0 }, { shape = { 2, 1, 2, 2 }, dtype = "u8" })
    local ok, err = pcall(core.eval.cc_label, t)
    assert.is_false(ok)
    assert.matches("more than one channel", err, 1, true)
    ok, err = pcall(core.eval.cc_label, npy(FIX .. "tie.npy"), { connectivity = 7 })
    assert.is_false(ok)
    assert.matches("connectivity 7", err, 1, true)
  end)
end)
