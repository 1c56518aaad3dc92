-- `lunet plan DATASET [-pl RULES] [--gpu-memory GB] [-overwrite_plans_name NAME]`: nnUNetv2_plan_experiment.
local USAGE = [[
usage: lunet plan DATASET [-pl default|resenc_m|resenc_l|resenc_xl|path.lua] [--gpu-memory GB]
                          [-overwrite_plans_name NAME]

Plans the experiment for DATASET (id, name or DatasetXXX_Name) from nnUNet_preprocessed/DatasetXXX/
dataset_fingerprint.json (run `lunet fingerprint DATASET` first) and the rules, and writes
nnUNet_preprocessed/DatasetXXX/<plans name>.json in nnU-Net's format, copying dataset.json next to it.
Configurations already in an existing plans file that this run does not produce are kept.

  -pl RULES                 rule preset or a rule file (default: default = nnU-Net's ExperimentPlanner;
                            nnU-Net planner class names such as nnUNetPlannerResEncL are accepted too)
  --gpu-memory GB           VRAM target (-gpu_memory_target GB also accepted)
  -overwrite_plans_name N   plans identifier (default: the rule set's, e.g. nnUNetPlans)
]]

local function fail(msg) io.stderr:write("lunet plan: " .. msg .. "\n"); return 2 end

return {
  summary = "plan the experiment (plans.json) from the dataset fingerprint and rules",
  usage = USAGE,
  run = function(args)
    local ds, rules, gpu, plans_name
    local i = 1
    while i <= #args do
      local a = args[i]
      if a == "-h" or a == "--help" then io.write(USAGE); return 0
      elseif a == "-pl" or a == "--rules" then rules = args[i + 1]; i = i + 1
        if not rules then return fail("-pl needs a value") end
      elseif a == "--gpu-memory" or a == "-gpu_memory_target" then
        gpu = tonumber(args[i + 1] or "")
        if not gpu or gpu <= 0 then return fail(a .. " needs a positive number") end
        i = i + 1
      elseif a == "-overwrite_plans_name" or a == "--plans-name" then plans_name = args[i + 1]; i = i + 1
        if not plans_name then return fail(a .. " needs a value") end
      elseif a:sub(1, 1) == "-" then return fail("unknown option " .. a .. "\n" .. USAGE)
      elseif ds then return fail("one DATASET expected")
      else ds = a end
      i = i + 1
    end
    if not ds then io.stderr:write(USAGE); return 2 end
    local paths = require "lunet.util.paths"
    local json = require "lunet.util.json"
    local fs = require "lunet.util.fs"
    local planner = require "lunet.planner"
    local name = paths.dataset_name(ds)
    local raw = paths.join(paths.raw(), name)
    local pre = paths.join(paths.preprocessed(), name)
    local fpfile = paths.join(pre, "dataset_fingerprint.json")
    if not paths.isfile(fpfile) then
      return fail(fpfile .. " is missing: run `lunet fingerprint " .. ds .. "` first")
    end
    local djfile = paths.join(raw, "dataset.json")
    local dj = json.read(djfile)
    local plans = planner.plan(json.read(fpfile), { dataset_json = dj, rules = rules, gpu_memory_gb = gpu,
                                                    plans_name = plans_name, dataset_name = name })
    local out = paths.join(pre, plans.plans_name .. ".json")
    if paths.isfile(out) then planner.merge_existing(plans, planner.read(out)) end
    fs.copy_atomic(djfile, paths.join(pre, "dataset.json"))
    planner.write(plans, out)
    for _, c in ipairs(json.keys(plans.configurations)) do
      local cfg = planner.configuration(plans, c)
      io.write(string.format("%-20s patch %-16s batch %-4s spacing %s\n", c, json.encode(cfg.patch_size),
        tostring(cfg.batch_size), json.encode(cfg.spacing)))
    end
    io.write(out, "\n")
    return 0
  end,
}
