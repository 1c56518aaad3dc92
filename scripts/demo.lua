-- `make demo`: the nnU-Net workflow end to end on the bundled brain-mask dataset (lunet.demo),
-- through the same `lunet` commands a user types. Each stage's time is measured; the run stops
-- at the first stage whose command is not built yet and says so.
--   LUNET_DEMO_DIR   where nnUNet_raw/_preprocessed/_results go (default ./demo)
--   LUNET_DEMO_EPOCHS, LUNET_DEMO_ITERS   the short training schedule (defaults in examples/demo_trainer.lua)
local root = os.getenv("LUNET_DEMO_DIR") or (os.getenv("PWD") .. "/demo")
local here = arg[0]:match("^(.*)/[^/]*$") or "."
-- find the checkout's modules without scripts/env.sh (make demo sets the paths too)
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath
local lunet_cmd = here .. "/lunet"
local clock = require "lunet.util.clock"
local demo = require "lunet.demo"

local env = {
  nnUNet_raw = root .. "/nnUNet_raw",
  nnUNet_preprocessed = root .. "/nnUNet_preprocessed",
  nnUNet_results = root .. "/nnUNet_results",
}
local prefix = {}
for k, v in pairs(env) do prefix[#prefix + 1] = string.format("%s='%s'", k, v) end
table.sort(prefix)
prefix = table.concat(prefix, " ")
-- the stages below run in child processes; this process needs the variables too (lunet.util.paths)
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local dataset = demo.dataset_name
local timings = {}

local function have(cmd)
  return package.searchpath("lunet.cli." .. cmd:gsub("-", "_"), package.path) ~= nil
end

local function stage(name, cmd, args)
  if not have(cmd) then
    print(string.format("\n== %s: `lunet %s` is not built yet; the demo stops here.", name, cmd))
    return false
  end
  print(string.format("\n== %s: lunet %s %s", name, cmd, args))
  local t0 = clock.now()
  local ok = os.execute(string.format("%s %s %s %s", prefix, q(lunet_cmd), cmd, args))
  timings[#timings + 1] = {name, clock.now() - t0}
  if not ok then error(string.format("demo: stage '%s' failed (lunet %s %s)", name, cmd, args), 0) end
  return true
end

print("Lunet demo: brain mask on the Colin27 T1 template (Debian mricron-data), outputs under " .. root)
local t0 = clock.now()
os.execute("mkdir -p " .. q(env.nnUNet_raw))
local raw = demo.make_dataset(env.nnUNet_raw)
timings[#timings + 1] = {"dataset", clock.now() - t0}
print("dataset: " .. raw)

local trainer_file = here .. "/../examples/demo_trainer.lua"
local results = env.nnUNet_results .. "/" .. dataset
local function postprocessing_file()
  local info = require("lunet.util.json").read(results .. "/inference_information.json")
  return info.best_model_or_ensemble.postprocessing_file
end
local ran_all = stage("verify", "verify", dataset)
  and stage("plan + preprocess", "plan-and-preprocess", dataset .. " -c 2d")
  and stage("train (fold 0)", "train", string.format("%s 2d 0 -tr %s --npz", dataset, q(trainer_file)))
  and stage("find-best", "find-best", string.format("%s -c 2d -f 0 -tr demo_trainer", dataset))
  and stage("predict held-out", "predict", string.format("-i %s/imagesTs -o %s/predictions -d %s -c 2d -f 0 -tr demo_trainer",
    q(raw), q(root), dataset))
  and stage("postprocess", "postprocess", string.format("-i %s/predictions -o %s/predictions_pp -pp_pkl_file %s -dataset_json %s/dataset.json",
    q(root), q(root), q(postprocessing_file()), q(raw)))
  and stage("evaluate", "evaluate", string.format("%s/labelsTs %s/predictions_pp -djfile %s/dataset.json -o %s/predictions_pp/summary.json",
    q(raw), q(root), q(raw), q(root)))

print("\nstage                 seconds")
for _, t in ipairs(timings) do print(string.format("%-20s %8.1f", t[1], t[2])) end
print(string.format("\noutputs:\n  raw dataset      %s\n  preprocessed     %s/%s\n  results          %s/%s",
  raw, env.nnUNet_preprocessed, dataset, env.nnUNet_results, dataset))
if ran_all then
  local summary = require("lunet.util.json").read(root .. "/predictions_pp/summary.json")
  print(string.format("\nheld-out slices: %d", #summary.metric_per_case))
  for k, v in pairs(summary.mean) do print(string.format("  class %s (brain)  Dice %.4f  IoU %.4f", k, v.Dice, v.IoU)) end
  print(string.format("  predictions      %s/predictions (postprocessed: %s/predictions_pp)", root, root))
  print(string.format("  model            %s/demo_trainer__nnUNetPlans__2d/fold_0 (progress.png, training log)", results))
  print(string.format("  selection        %s/inference_instructions.txt", results))
end
