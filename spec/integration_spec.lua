-- The whole workflow through the `lunet` command on a small slice of the demo dataset (real MRI):
-- verify, plan+preprocess, train, predict, evaluate, find-best, postprocess. Each stage's outputs
-- must exist, parse and make sense; the final Dice threshold is out of reach of a broken stage
-- (an empty or all-brain prediction scores below 0.7 on these slices).
local json = require "lunet.util.json"

local function sh(env, cmd)
  local p = assert(io.popen(env .. " scripts/lunet " .. cmd .. " 2>&1"))
  local out = p:read("a")
  local ok = p:close()
  if not ok then error("lunet " .. cmd .. " failed:\n" .. out, 2) end
  return out
end

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

describe("integration", function()
  local root = os.tmpname()
  os.remove(root)
  local env = string.format("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre nnUNet_results=%s/res", root, root, root)
  local name = "Dataset100_ColinBrainMask"
  local raw = root .. "/raw/" .. name
  local fx = "spec/fixtures/integration/"

  setup(function()
    os.execute("mkdir -p " .. root .. "/raw")
    require("lunet.demo").make_dataset(root .. "/raw", {step = 4})
  end)
  teardown(function() os.execute("rm -rf " .. root) end)

  it("runs every stage and reaches a useful brain mask", function()
    assert.matches("OK", sh(env, "verify " .. name))

    sh(env, "plan-and-preprocess " .. name .. " -c 2d -pl " .. fx .. "tiny_rules.lua -q")
    local plans = json.read(root .. "/pre/" .. name .. "/TinyPlans.json")
    assert.same({8, 16, 32, 32, 32},
      plans.configurations["2d"].architecture.arch_kwargs.features_per_stage)
    assert.is_true(exists(root .. "/pre/" .. name .. "/dataset_fingerprint.json"))

    sh(env, "train " .. name .. " 2d 0 -p TinyPlans -tr " .. fx .. "tiny_trainer.lua --npz -q")
    local fold = root .. "/res/" .. name .. "/tiny_trainer__TinyPlans__2d/fold_0"
    for _, f in ipairs({"checkpoint_final.pth", "checkpoint_best.pth", "progress.png", "debug.json",
                        "validation/summary.json"}) do
      assert.is_true(exists(fold .. "/" .. f), "missing " .. fold .. "/" .. f)
    end
    local val = json.read(fold .. "/validation/summary.json")
    assert.is_true(val.foreground_mean.Dice > 0.7, "validation Dice " .. tostring(val.foreground_mean.Dice))

    local pred = root .. "/pred"
    sh(env, string.format("predict -i %s/imagesTs -o %s -d %s -c 2d -f 0 -p TinyPlans -tr tiny_trainer", raw, pred, name))
    local ev = sh(env, string.format("evaluate %s/labelsTs %s -djfile %s/dataset.json", raw, pred, raw))
    local summary = json.read(pred .. "/summary.json")
    assert.is_true(summary.mean["1"].Dice > 0.7, "held-out Dice " .. tostring(summary.mean["1"].Dice) .. "\n" .. ev)

    sh(env, string.format("find-best %s -c 2d -f 0 -p TinyPlans -tr tiny_trainer", name))
    local info = json.read(root .. "/res/" .. name .. "/inference_information.json")
    assert.is_not_nil(info.best_model_or_ensemble)
    assert.is_true(exists(root .. "/res/" .. name .. "/inference_instructions.txt"))

    local pp = info.best_model_or_ensemble.postprocessing_file
    sh(env, string.format("postprocess -i %s -o %s/pp -pp_pkl_file %s -dataset_json %s/dataset.json", pred, root, pp, raw))
    local n = 0
    for _ in io.popen("ls " .. root .. "/pp/*.nii.gz"):lines() do n = n + 1 end
    assert.is_true(n >= 1)
  end)
end)
