-- Postprocessing: steps read from nnU-Net's postprocessing.json or .pkl, applied per file with C
-- connected components; determine_postprocessing's decisions are checked end to end in find_best_spec.
local lunet = require "lunet"
local pp = require "lunet.postprocess"
local npy = lunet.core.npz.read_npy

local FIX = "spec/fixtures/eval/"

describe("postprocess", function()
  it("loads nnU-Net's steps from its postprocessing.json and its postprocessing.pkl alike", function()
    for _, f in ipairs { "postprocessing.json", "postprocessing.pkl" } do
      local steps = pp.load(FIX .. "find_best/golden/" .. f)
      assert.are.equal(3, #steps)
      assert.are.equal("remove_all_but_largest_component_from_segmentation", steps[1].fn)
      assert.are.same({ 1, 2 }, { table.unpack(steps[1].kwargs.labels_or_regions) })
      assert.are.equal(1, steps[2].kwargs.labels_or_regions)
      assert.are.equal(2, steps[3].kwargs.labels_or_regions)
    end
    local ok, err = pcall(pp.load, "/nonexistent/postprocessing.pkl")
    assert.is_false(ok)
    assert.matches("not found", err, 1, true)
  end)

  it("writes a postprocessing.pkl that reads back as the same steps, and refuses foreign functions", function()
    local pickles = require "lunet.io.pickles"
    local f = os.tmpname()
    local steps = { { fn = "remove_all_but_largest_component_from_segmentation", kwargs = { labels_or_regions = { 1, 2 } } },
                    { fn = "remove_all_but_largest_component_from_segmentation", kwargs = { labels_or_regions = 2 } } }
    pickles.write_postprocessing(f, steps)
    local back = pp.load(f)
    assert.are.equal(2, #back)
    assert.are.same({ 1, 2 }, { table.unpack(back[1].kwargs.labels_or_regions) })
    assert.are.equal(2, back[2].kwargs.labels_or_regions)
    -- the pickle names nnunetv2's function, as nnU-Net's own file does (so nnUNetv2_apply_postprocessing runs it)
    local P = lunet.core.pickle
    local raw = P.load_file(f, { symbolic_globals = {
      "nnunetv2.postprocessing.remove_connected_components.remove_all_but_largest_component_from_segmentation" } })
    assert.are.equal("nnunetv2.postprocessing.remove_connected_components", raw[1][1].module)
    -- any other global is refused by the reader
    local evil = os.tmpname() .. ".pkl"
    local fh = assert(io.open(evil, "wb"))
    fh:write(P.dumps(P.tuple { P.list { P.global("os", "system") }, P.list { P.dict() } }))
    fh:close()
    local ok, err = pcall(pp.load, evil)
    assert.is_false(ok)
    assert.matches("os.system", tostring(err), 1, true)
    os.remove(f); os.remove(evil)
  end)

  it("applies steps in order as nnU-Net's apply_postprocessing", function()
    local seg = npy(FIX .. "cc/seg.npy")
    -- fg then label 2 = keep_fg, then keep largest of label 2 on that
    local a = pp.apply(seg, { { fn = "remove_all_but_largest_component_from_segmentation",
      kwargs = { labels_or_regions = { 1, 2, 3 } } } })
    assert.are.equal(npy(FIX .. "cc/seg_keep_fg.npy"):bytes(), a:bytes())
    local b = pp.apply(seg, { { fn = "remove_all_but_largest_component_from_segmentation", kwargs = { labels_or_regions = 2 } } })
    assert.are.equal(npy(FIX .. "cc/seg_keep_l2.npy"):bytes(), b:bytes())
    local ok, err = pcall(pp.apply, seg, { { fn = "nope" } })
    assert.is_false(ok)
    assert.matches("unknown function 'nope'", err, 1, true)
  end)

  it("CLI applies a postprocessing file to a folder of NIfTI segmentations", function()
    local out = os.tmpname()
    os.remove(out)
    local d = FIX .. "labels/pred"
    local code = require("lunet.cli").main({ "postprocess", "-i", d, "-o", out, "--pp",
      FIX .. "find_best/golden/postprocessing.json", "-dataset_json", FIX .. "labels/dataset.json" })
    assert.are.equal(0, code)
    local img = lunet.io.image.read(out .. "/c1_normal.nii.gz")
    local src = lunet.io.image.read(d .. "/c1_normal.nii.gz")
    local want = pp.keep_largest(pp.keep_largest(pp.keep_largest(src.data, { 1, 2 }), 1), 2)
    assert.are.same(src.data.shape, img.data.shape)
    assert.are.same(want:flat(), img.data:flat())
    assert.are.same(src.sitk.spacing, img.sitk.spacing)
    os.execute("rm -rf '" .. out .. "'")
  end)
end)

describe("ensemble", function()
  it("CLI averages npz probabilities; its segmentations score as nnunetv2's ensemble", function()
    local cjson = require "cjson"
    local T = FIX .. "find_best/tree/"
    local M = T .. "nnUNet_results/Dataset901_Tiny/nnUNetTrainer__nnUNetPlans__"
    local out = os.tmpname()
    os.remove(out)
    local code = require("lunet.cli").main({ "ensemble", "-i", M .. "2d/fold_0/validation", M .. "3d_fullres/fold_0/validation",
      "-o", out, "-dataset_json", M .. "2d/dataset.json", "--save_npz" })
    assert.are.equal(0, code)
    local ev = require("lunet.evaluate")
    local s = ev.folder(T .. "nnUNet_preprocessed/Dataset901_Tiny/gt_segmentations", out,
      { dataset_json = M .. "2d/dataset.json", output_file = false, chill = true })
    local f = io.open(FIX .. "find_best/golden/summary__ensemble___nnUNetTrainer__nnUNetPlans__2d___nnUNetTrainer__nnUNetPlans__3d_fullres___0_1_2_3_4.json")
    local want = cjson.decode(f:read("a"))
    f:close()
    assert.are.equal(2, #s.metric_per_case)
    for i = 1, 2 do
      assert.are.equal(want.metric_per_case[i].prediction_file, (s.metric_per_case[i].prediction_file:match("[^/]+$")))
      for key, m in pairs(want.metric_per_case[i].metrics) do
        assert.are.equal(m.TP, s.metric_per_case[i].metrics[key].TP)
        assert.are.equal(m.FP, s.metric_per_case[i].metrics[key].FP)
      end
    end
    local z = lunet.core.npz.read(out .. "/case_00.npz")
    assert.are.equal("f32", z.probabilities.dtype)
    os.execute("rm -rf '" .. out .. "'")
  end)
end)
