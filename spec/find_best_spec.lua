-- find-best on a tiny nnUNet_results tree (2 configurations x 5 folds, npz validation outputs) equals
-- nnunetv2's find_best_configuration on the same files: scores, chosen ensemble, postprocessing decisions.
local cjson = require "cjson"

local FIX = "spec/fixtures/eval/find_best/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function decode(p) cjson.decode_invalid_numbers(true); return cjson.decode(slurp(p)) end
local function close(a, b, what) assert(math.abs(a - b) <= 1e-6, what .. ": expected " .. b .. " got " .. a) end

-- Lua cannot setenv: run the CLI in a child lua5.4 with nnU-Net's variables pointing at a copy of the tree.
local root = os.tmpname()
os.remove(root)
local NAME = "Dataset901_Tiny"
local ENS = "ensemble___nnUNetTrainer__nnUNetPlans__2d___nnUNetTrainer__nnUNetPlans__3d_fullres___0_1_2_3_4"

describe("find-best", function()
  local out, code
  setup(function()
    assert(os.execute("mkdir -p '" .. root .. "' && cp -r " .. FIX .. "tree/. '" .. root .. "/'"))
    local cmd = string.format("nnUNet_raw='%s/nnUNet_raw' nnUNet_preprocessed='%s/nnUNet_preprocessed' " ..
      "nnUNet_results='%s/nnUNet_results' lua5.4 -e 'os.exit(require(\"lunet.cli\").main({\"find-best\", \"901\", " ..
      "\"-c\", \"2d\", \"3d_fullres\", \"3d_lowres\"}))' 2>&1", root, root, root)
    local p = io.popen(cmd)
    out = p:read("a")
    code = select(3, p:close())
  end)
  teardown(function() os.execute("rm -rf '" .. root .. "'") end)

  it("runs", function() assert.are.equal(0, code, out) end)

  it("scores every configuration and the ensemble as nnunetv2 and picks the same winner", function()
    local want = decode(FIX .. "golden/inference_information.json")
    local got = decode(root .. "/nnUNet_results/" .. NAME .. "/inference_information.json")
    for k, v in pairs(want.all_results) do close(got.all_results[k], v, k) end
    local n = 0
    for _ in pairs(got.all_results) do n = n + 1 end
    assert.are.equal(3, n)
    local wb, gb = want.best_model_or_ensemble, got.best_model_or_ensemble
    assert.are.same(wb.selected_model_or_models, gb.selected_model_or_models)
    close(gb.result_on_crossval_pre_pp, wb.result_on_crossval_pre_pp, "pre pp")
    close(gb.result_on_crossval_post_pp, wb.result_on_crossval_post_pp, "post pp")
    assert.are.same(want.considered_models, got.considered_models)
    assert.are.same(want.folds, got.folds)
    local rr = root .. "/nnUNet_results"
    assert.are.equal(wb.some_plans_file, (gb.some_plans_file:gsub(rr:gsub("%p", "%%%0"), "$nnUNet_results")))
    assert.are.equal(wb.postprocessing_file, (gb.postprocessing_file:gsub(rr:gsub("%p", "%%%0"), "$nnUNet_results")))
  end)

  it("every candidate's summary equals nnunetv2's", function()
    for _, k in ipairs({ "nnUNetTrainer__nnUNetPlans__2d", "nnUNetTrainer__nnUNetPlans__3d_fullres", ENS }) do
      local want = decode(FIX .. "golden/summary__" .. k .. ".json")
      local folder = k:match("^ensemble") and (root .. "/nnUNet_results/" .. NAME .. "/ensembles/" .. k)
        or (root .. "/nnUNet_results/" .. NAME .. "/" .. k .. "/crossval_results_folds_0_1_2_3_4")
      local got = decode(folder .. "/summary.json")
      for i, c in ipairs(want.metric_per_case) do
        local g = got.metric_per_case[i]
        assert.are.equal(c.prediction_file, (g.prediction_file:match("[^/]+$")))
        for key, m in pairs(c.metrics) do
          for name, v in pairs(m) do
            if v == v then close(g.metrics[key][name], v, k .. " " .. c.prediction_file .. " " .. name) end
          end
        end
      end
    end
  end)

  it("determines the same postprocessing (steps, kwargs, Dice before/after)", function()
    local want = decode(FIX .. "golden/postprocessing.json")
    local steps = decode(FIX .. "golden/postprocessing_pkl.json")
    local got = decode(root .. "/nnUNet_results/" .. NAME .. "/ensembles/" .. ENS .. "/postprocessing.json")
    assert.are.same(want.postprocessing_fns, got.postprocessing_fns)
    assert.are.same(want.postprocessing_kwargs, got.postprocessing_kwargs)
    assert.are.same(steps.postprocessing_kwargs, got.postprocessing_kwargs)
    for _, part in ipairs({ "input_folder", "postprocessed" }) do
      for m, v in pairs(want[part].foreground_mean) do close(got[part].foreground_mean[m], v, part .. " " .. m) end
      for key, mm in pairs(want[part].mean) do
        for m, v in pairs(mm) do close(got[part].mean[key][m], v, part .. " " .. key .. " " .. m) end
      end
    end
  end)

  it("writes the inference instructions with lunet commands", function()
    local want = slurp(FIX .. "golden/inference_instructions.txt")
      :gsub("nnUNetv2_predict", "lunet predict"):gsub("nnUNetv2_ensemble", "lunet ensemble")
      :gsub("nnUNetv2_apply_postprocessing", "lunet postprocess")
    local got = slurp(root .. "/nnUNet_results/" .. NAME .. "/inference_instructions.txt")
      :gsub((root .. "/nnUNet_results"):gsub("%p", "%%%0"), "$nnUNet_results")
    assert.are.equal(want, got)
  end)
  it("writes instructions from a summary alone, without nnUNet_results set", function()
    local cmd = "env -u nnUNet_results lua5.4 -e 'local fb = require \"lunet.find_best\"; io.write(fb.instructions({" ..
      "dataset_name_or_id = \"Dataset901_Tiny\", folds = {0}, best_model_or_ensemble = {postprocessing_file = \"/pp.pkl\", " ..
      "some_plans_file = \"/plans.json\", selected_model_or_models = {{trainer = \"nnUNetTrainer\", " ..
      "plans_identifier = \"nnUNetPlans\", configuration = \"3d_cascade_fullres\"}}}}))' 2>&1"
    local p = io.popen(cmd)
    local text = p:read("a")
    assert.is_true(select(3, p:close()) == 0, text)
    assert.truthy(text:find("-c 3d_cascade_fullres", 1, true), text)
  end)
end)
