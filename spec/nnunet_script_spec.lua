-- A shell script written for nnU-Net v2 (spec/fixtures/nnunet_script/pipeline.sh: plan_and_preprocess with
-- --verify_dataset_integrity, train with nnUNetTrainer_1epoch, find_best, predict -device cpu,
-- apply_postprocessing) runs unchanged through the nnUNetv2_* wrappers of scripts/nnunet-names/ put first on PATH.
local json = require "lunet.util.json"
local tmp = require "spec.support.tmp"
local evaluate = require "lunet.evaluate"

local function exists(p)
  local f = io.open(p)
  if f then f:close() end
  return f ~= nil
end

local function read(p)
  local f = assert(io.open(p))
  local s = f:read("a")
  f:close()
  return s
end

describe("an nnU-Net v2 shell script run through the nnUNetv2_* wrappers", function()
  local root
  setup(function()
    root = tmp.dir()
    if os.getenv("KEEP") then print(root) end
    require("spec.support.tiny_dataset").make(root .. "/raw")
  end)
  teardown(function() if not os.getenv("KEEP") then tmp.remove(root) end end)

  it("plans, trains, picks the configuration, predicts and postprocesses", function()
    local script = "spec/fixtures/nnunet_script/pipeline.sh"
    assert.is_nil(read(script):find("lunet", 1, true), "the script must be nnU-Net's, not Lunet's")
    local q = tmp.quote
    local cmd = string.format("cd %s && export nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s PATH=%s:\"$PATH\" " ..
      "&& bash %s %s > %s 2>&1", q(os.getenv("PWD") or "."), q(root .. "/raw"), q(root .. "/pre"), q(root .. "/res"),
      q((os.getenv("PWD") or ".") .. "/scripts/nnunet-names"), q(script), q(root .. "/out"), q(root .. "/log"))
    local ok = os.execute(cmd)
    assert.is_true(ok == true, "pipeline.sh failed:\n" .. read(root .. "/log"))

    local name = "Dataset501_TinyShapes"
    local model = root .. "/res/" .. name .. "/nnUNetTrainer_1epoch__nnUNetPlans__2d"
    local plans = json.read(root .. "/pre/" .. name .. "/nnUNetPlans.json")
    assert.same({ 16, 16 }, plans.configurations["2d"].patch_size)
    assert.is_true(exists(model .. "/fold_0/checkpoint_final.pth"))
    local val = json.read(model .. "/fold_0/validation/summary.json")
    assert.is_true(val.foreground_mean.Dice > 0.8, "validation Dice " .. tostring(val.foreground_mean.Dice))

    -- find_best: the one trained model won; its postprocessing and the instructions are where nnU-Net puts them
    local info = json.read(root .. "/res/" .. name .. "/inference_information.json")
    local sel = info.best_model_or_ensemble.selected_model_or_models
    assert.equal(1, #sel)
    assert.same({ configuration = "2d", trainer = "nnUNetTrainer_1epoch", plans_identifier = "nnUNetPlans" }, sel[1])
    assert.equal(model .. "/crossval_results_folds_0/postprocessing.pkl", info.best_model_or_ensemble.postprocessing_file)
    assert.is_true(exists(info.best_model_or_ensemble.postprocessing_file))
    local instr = read(root .. "/res/" .. name .. "/inference_instructions.txt")
    assert.matches("-tr nnUNetTrainer_1epoch -c 2d", instr, 1, true)

    -- the held-out predictions and their postprocessed twins: both cases, and right
    for _, sub in ipairs({ "pred", "pred_pp" }) do
      for _, id in ipairs({ "tiny_011", "tiny_012" }) do
        assert.is_true(exists(root .. "/out/" .. sub .. "/" .. id .. ".nii.gz"), sub .. "/" .. id .. " missing")
      end
      local s = evaluate.folder(root .. "/raw/" .. name .. "/labelsTs", root .. "/out/" .. sub,
        { dataset_json = root .. "/raw/" .. name .. "/dataset.json", output_file = false })
      assert.is_true(s.foreground_mean.Dice > 0.8, sub .. " Dice " .. tostring(s.foreground_mean.Dice))
    end
  end)
end)
