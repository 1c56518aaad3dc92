-- nnU-Net's patch sampling (nnunetv2/training/dataloading/data_loader.py: nnUNetDataLoader): forced-foreground positions, enlarged initial patch
-- (values from nnunetv2's get_patch_size), box ranges against the get_bbox formulas, padding, determinism.
local core = require "lunet.core"
local sampler = require "lunet.sampler"
local augment = require "lunet.augment"
local S = core.sampler

local function deg(d) return d / 180 * math.pi end

-- independent Lua statement of get_bbox's bounds
local function bounds(shape, patch, final)
  local lb, ub = {}, {}
  for d = 1, 3 do
    local need = patch[d] - final[d]
    if need + shape[d] < patch[d] then need = patch[d] - shape[d] end
    lb[d] = (-need) // 2
    ub[d] = shape[d] + need // 2 + need % 2 - patch[d]
  end
  return lb, ub
end

local function sparse_case(Z, Y, X, fg)
  local d, s, locs = {}, {}, {}
  for i = 1, Z * Y * X do d[i] = (i % 13) / 13; s[i] = 0 end
  for _, v in ipairs(fg) do
    local z, y, x = v[1], v[2], v[3]
    s[(z * Y + y) * X + x + 1] = 1
    for _, c in ipairs { 0, z, y, x } do locs[#locs + 1] = c end
  end
  return {
    data = core.tensor(d, { shape = { 1, Z, Y, X } }),
    seg = core.tensor(s, { shape = { 1, Z, Y, X }, dtype = "i16" }),
    class_locations = { core.tensor(locs, { shape = { #fg, 4 }, dtype = "i64" }) },
  }
end

describe("sampler", function()
  it("forces the last round(B*(1-0.33)) samples of a batch to foreground", function()
    local function forced_idx(B)
      local out = {}
      for j = 0, B - 1 do if S.force_fg(B, 0.33, j) then out[#out + 1] = j end end
      return out
    end
    assert.are.same({ 1 }, forced_idx(2))
    assert.are.same({ 6, 7, 8 }, forced_idx(9))      -- round(6.03) = 6
    assert.are.same({ 2 }, forced_idx(3))
    assert.are.same({ 8, 9, 10, 11 }, forced_idx(12))
    -- share over many batches of 12 (and of 100): 0.33 +- 0.03
    for _, B in ipairs { 12, 100 } do
      local n, f = 0, 0
      for _ = 1, 50 do for _, x in ipairs(sampler.forced(B, 0.33)) do n = n + 1; if x then f = f + 1 end end end
      assert.is_true(math.abs(f / n - 0.33) <= 0.03, "B=" .. B .. " share " .. f / n)
    end
  end)

  it("enlarged initial patch equals nnunetv2's get_patch_size", function()
    assert.are.same({ 73, 80, 64 }, S.initial_patch({ 40, 56, 40 }, deg(30)))
    assert.are.same({ 188, 341, 228 }, S.initial_patch({ 56, 224, 192 }, deg(30)))
    assert.are.same({ 143, 238, 158 }, S.initial_patch({ 48, 160, 128 }, deg(30)))
    assert.are.same({ 65, 65 }, S.initial_patch({ 56, 40 }, deg(180)))
    assert.are.same({ 602, 602 }, S.initial_patch({ 512, 512 }, deg(180)))
    assert.are.same({ 92, 75 }, S.initial_patch({ 64, 64 }, deg(15)))
    assert.are.same({ 225, 225, 225 }, S.initial_patch({ 20, 192, 160 }, deg(180)))
  end)

  it("rotation / dummy-2D / mirroring rules", function()
    local c = augment.configure({ 64, 64 })
    assert.are.equal(false, c.dummy2d); assert.are.same({ 0, 1 }, c.mirror_axes)
    assert.is_true(math.abs(c.rotation - math.pi) < 1e-12)
    assert.is_true(math.abs(augment.configure({ 40, 128 }).rotation - deg(15)) < 1e-12)
    c = augment.configure({ 20, 192, 160 })
    assert.is_true(c.dummy2d); assert.are.same({ 20, 225, 225 }, c.initial_patch)
    c = augment.configure({ 40, 56, 40 })
    assert.is_false(c.dummy2d); assert.are.same({ 73, 80, 64 }, c.initial_patch)
    assert.is_true(math.abs(c.rotation - deg(30)) < 1e-12)
    assert.are.same({ 1, 32, 32 }, augment.configure({ 32, 32 }).final_patch)
  end)

  it("random boxes cover exactly [lb, ub] and have the sampled size", function()
    local rng = core.rng.new(3)
    for _, cse in ipairs {
      { shape = { 20, 30, 40 }, patch = { 24, 20, 41 }, final = { 16, 16, 32 } },
      { shape = { 1, 50, 9 }, patch = { 1, 37, 37 }, final = { 1, 32, 32 } },
      { shape = { 7, 8, 9 }, patch = { 7, 8, 9 }, final = { 7, 8, 9 } },
    } do
      local lb, ub = bounds(cse.shape, cse.patch, cse.final)
      local seen_lo, seen_hi = { math.huge, math.huge, math.huge }, { -math.huge, -math.huge, -math.huge }
      for _ = 1, 400 do
        local lo, hi, sel = S.bbox(cse.shape, cse.patch, cse.final, false, nil, rng)
        assert.is_nil(sel)
        for d = 1, 3 do
          assert.are.equal(cse.patch[d], hi[d] - lo[d])
          assert.is_true(lo[d] >= lb[d] and lo[d] <= ub[d])
          seen_lo[d] = math.min(seen_lo[d], lo[d]); seen_hi[d] = math.max(seen_hi[d], lo[d])
        end
      end
      assert.are.same(lb, seen_lo)
      assert.are.same(ub, seen_hi)
    end
  end)

  it("forced boxes are centred on a stored voxel of a present class", function()
    local rng = core.rng.new(11)
    local c1 = core.tensor({ 0, 2, 3, 4, 0, 5, 6, 7 }, { shape = { 2, 4 }, dtype = "i64" })
    local empty = core.tensor({}, { shape = { 0, 4 }, dtype = "i64" })
    local c3 = core.tensor({ 0, 9, 9, 9 }, { shape = { 1, 4 }, dtype = "i64" })
    local shape, patch, final = { 10, 12, 14 }, { 8, 8, 8 }, { 6, 6, 6 }
    local lb = bounds(shape, patch, final)
    local count = {}
    for _ = 1, 300 do
      local lo, hi, sel = S.bbox(shape, patch, final, true, { c1, empty, c3 }, rng)
      assert.is_true(sel == 1 or sel == 3)
      count[sel] = (count[sel] or 0) + 1
      local vox = sel == 3 and { { 9, 9, 9 } } or { { 2, 3, 4 }, { 5, 6, 7 } }
      local ok = false
      for _, v in ipairs(vox) do
        local match = true
        for d = 1, 3 do if lo[d] ~= math.max(lb[d], v[d] - patch[d] // 2) then match = false end end
        ok = ok or match
      end
      assert.is_true(ok)
      for d = 1, 3 do assert.are.equal(8, hi[d] - lo[d]) end
    end
    assert.is_true(count[1] > 100 and count[3] > 100, "class choice is uniform among present classes")
    -- no class present: falls back to a random box
    local _, _, sel = S.bbox(shape, patch, final, true, { empty }, rng)
    assert.is_nil(sel)
    -- ignore label: unforced samples use the annotated key; forced ones skip it when others exist
    for _ = 1, 50 do
      local _, _, s1 = S.bbox(shape, patch, final, false, { c1, c3 }, rng, 2, true)
      assert.are.equal(2, s1)
      local _, _, s2 = S.bbox(shape, patch, final, true, { c1, c3 }, rng, 2, true)
      assert.are.equal(1, s2)
    end
  end)

  it("crops with padding outside the image (data 0, seg -1)", function()
    local t = core.tensor({ 1, 2, 3, 4 }, { shape = { 1, 1, 2, 2 }, dtype = "i16" })
    local o = S.crop(t, { 0, -1, 1 }, { 1, 2, 3 }, -1)
    assert.are.same({ 1, 1, 3, 2 }, o.shape)
    assert.are.same({ -1, -1, 2, -1, 4, -1 }, o:flat()) -- rows y=-1 (pad), y=0 (x=1 in, x=2 pad), y=1
  end)

  it("batches: planned size, forced samples contain foreground, same seed -> identical", function()
    local fg = { { 0, 5, 7 }, { 0, 30, 40 } }
    local case = sparse_case(1, 48, 64, fg)
    local function run(seed, validation)
      local L = sampler.new { cases = { case }, patch_size = { 16, 16 }, batch_size = 3, seed = seed, validation = validation,
        ds_scales = { { 1, 1, 1 }, { 1, 0.5, 0.5 } } }
      local out = {}
      for k = 1, 20 do
        local b = L:next_batch()
        assert.are.same({ 3, 1, 1, 16, 16 }, b.data.shape)
        assert.are.same({ 3, 1, 1, 16, 16 }, b.target[1].shape)
        assert.are.same({ 3, 1, 1, 8, 8 }, b.target[2].shape)
        assert.are.same({ false, false, true }, b.force_fg)
        if validation then -- no augmentation: the forced (last) sample's target holds the foreground voxel
          local t = b.target[1]:flat()
          local s = 0
          for i = 2 * 256 + 1, 3 * 256 do s = s + t[i] end
          assert.is_true(s >= 1)
        end
        out[k] = { b.data:flat(), b.target[1]:flat(), b.boxes }
      end
      return out
    end
    local a, b2, c = run(1, true), run(1, true), run(2, true)
    assert.are.same(a, b2)
    assert.are_not.same(a, c)
    local ta, tb = run(7, false), run(7, false)
    assert.are.same(ta, tb)
  end)
end)
