-- `lunet plan DATASET [-pl RULES] [--gpu-memory GB] [-overwrite_plans_name NAME]`: nnUNetv2_plan_experiment.
local USAGE = [[
usage: lunet plan DATASET | -d DATASET [-pl default|resenc_m|resenc_l|resenc_xl|path.lua] [--gpu-memory GB]
                          [-overwrite_plans_name NAME]

Plans the experiment for DATASET (id, name or DatasetXXX_Name) from nnUNet_preprocessed/DatasetXXX/
dataset_fingerprint.json (run `lunet fingerprint DATASET` first) and the rules, and writes
nnUNet_preprocessed/DatasetXXX/<plans name>.json in nnU-Net's format, copying dataset.json next to it.
Configurations already in an existing plans file that this run does not produce are kept.

  -pl RULES                 rule preset or a rule file (default: default = nnU-Net's ExperimentPlanner;
                            nnU-Net planner class names such as nnUNetPlannerResEncL are accepted too)
  --gpu-memory GB           VRAM target (-gpu_memory_target GB also accepted)
  -overwrite_plans_name N   plans identifier (default: the rule set's, e.g. nnUNetPlans)

A rule file is Lua code run with your rights (no sandbox): read one from others before using it. Each rule call
from a rule file may run LUNET_RULE_TIMEOUT seconds (default 10; 0 = no limit) before planning stops.
]]

local function fail(msg) io.stderr:write("lunet plan: " .. msg .. "\n"); return 2 end

local M = { summary = "plan the experiment (plans.json) from the dataset fingerprint and rules", usage = USAGE }

--- Parses args; returns opts or nil, exit code. A rule file is loaded here, so that its mistakes stop
--- plan_and_preprocess before the fingerprint is computed.
function M.parse(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE); return nil, 0
    elseif a == "-pl" or a == "--rules" then o.rules = args[i + 1]; i = i + 1
      if not o.rules then return nil, fail(a .. " needs a value") end
    elseif a == "--gpu-memory" or a == "-gpu_memory_target" then
      o.gpu = tonumber(args[i + 1] or "")
      if not o.gpu or o.gpu <= 0 then return nil, fail(a .. " needs a positive number, got " .. tostring(args[i + 1])) end
      i = i + 1
    elseif a == "-overwrite_plans_name" or a == "--plans-name" then o.plans_name = args[i + 1]; i = i + 1
      if not o.plans_name then return nil, fail(a .. " needs a value") end
    elseif a == "-d" then -- nnU-Net style: -d 4
      if o.ds then return nil, fail("one DATASET expected") end
      o.ds = args[i + 1]; i = i + 1
      if not o.ds then return nil, fail("-d needs a dataset id or name") end
    elseif a:sub(1, 1) == "-" then return nil, fail("unknown option " .. a .. "\n" .. USAGE)
    elseif o.ds then return nil, fail("one DATASET expected")
    else o.ds = a end
    i = i + 1
  end
  if not o.ds then io.stderr:write(USAGE); return nil, 2 end
  if o.rules then
    -- through a Lua function: load_rules blames its caller's caller (level 3), here pcall, which adds no position
    local ok, err = pcall(function() require("lunet.planner").load_rules(o.rules) end) -- no tail call: one level
    if not ok then return nil, fail(tostring(err)) end
  end
  return o
end

function M.run(args)
  local o, code = M.parse(args)
  if not o then return code end
  local ds, rules, gpu, plans_name = o.ds, o.rules, o.gpu, o.plans_name
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
end

return M
