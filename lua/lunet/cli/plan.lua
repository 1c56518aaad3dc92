-- `lunet plan DATASET [-pl RULES] [-gpu_memory_target GB] [-overwrite_plans_name NAME] ...`: nnUNetv2_plan_experiment.
local args = require "lunet.cli.args"

local M = args.command({ summary = "plan the experiment (plans.json) from the dataset fingerprint and rules" })

-- Lunet's preprocessing is nnU-Net's DefaultPreprocessor; nnU-Net's other -preprocessor_name values name Python
-- classes of a user's own, which Lunet cannot run
local PREPROCESSORS = { DefaultPreprocessor = true }

--- The options plan declares, on p (plan_and_preprocess declares the same ones and passes them on).
function M.declare(p)
  p:option("-pl", "rule preset (default, resenc_m, resenc_l, resenc_xl), a rule file, or an nnU-Net planner class "
    .. "name such as nnUNetPlannerResEncL (default: default = nnU-Net's ExperimentPlanner; also --rules)")
    :hidden_name("--rules"):argname("RULES")
  p:option("-gpu_memory_target", "VRAM target in GB (default: the rules'; also --gpu-memory)")
    :hidden_name("--gpu-memory"):argname("GB"):convert(args.number("-gpu_memory_target", true))
  p:option("-preprocessor_name", "written into every configuration as nnU-Net's planner does; Lunet has one "
    .. "preprocessor, DefaultPreprocessor (the default)"):argname("NAME"):convert(function(s)
      if PREPROCESSORS[s] then return s end
      return nil, ("-preprocessor_name %s: Lunet's preprocessing is nnU-Net's DefaultPreprocessor, the only name "
        .. "accepted (a custom nnU-Net preprocessor is Python code Lunet cannot run)"):format(s)
    end)
  p:option("-overwrite_target_spacing", "3d_fullres target spacing (3 numbers in the fingerprint's axis order), "
    .. "used instead of the rules' median/anisotropy choice; as in nnU-Net the transpose, 3d_lowres, the cascade "
    .. "and 2d are planned from it. Use -overwrite_plans_name with it"):args(3):argname({ "Z", "Y", "X" })
    :convert(function(s)
      local n = tonumber(s)
      if not n or not (n > 0) or n == math.huge then
        return nil, "-overwrite_target_spacing needs 3 positive numbers, got " .. s
      end
      return n + 0.0
    end)
  p:option("-overwrite_plans_name", "plans identifier (default: the rules', e.g. nnUNetPlans; also --plans-name)")
    :hidden_name("--plans-name"):argname("NAME")
end

function M.parser()
  local p = args.parser("plan", [[
Plans the experiment for DATASET (id, name or DatasetXXX_Name) from nnUNet_preprocessed/DatasetXXX/
dataset_fingerprint.json (run `lunet fingerprint DATASET` first) and the rules, and writes
nnUNet_preprocessed/DatasetXXX/<plans name>.json in nnU-Net's format, copying dataset.json next to it.
Configurations already in an existing plans file that this run does not produce are kept.

A rule file is Lua code run with your rights (no sandbox): read one from others before using it. Each rule call
from a rule file may run LUNET_RULE_TIMEOUT seconds (default 10; 0 = no limit) before planning stops.]])
  p:argument("DATASET", "dataset id or name (or give it with -d)"):args("?")
  p:option("-d", "dataset id or name (nnU-Net's spelling)"):argname("DATASET")
  M.declare(p)
  return p
end

--- The planner options of a parse result (plan's or plan_and_preprocess's). A rule file is loaded here, so that
--- its mistakes stop plan_and_preprocess before the fingerprint is computed.
function M.options(r)
  local loaded
  if r.pl then
    -- through a Lua function: load_rules blames its caller's caller (level 3), here pcall, which adds no position
    local ok, err = pcall(function() loaded = require("lunet.planner").load_rules(r.pl) end) -- no tail call
    if not ok then error(err, 0) end
  end
  return { rules = r.pl, gpu = r.gpu_memory_target, plans_name = r.overwrite_plans_name,
    preprocessor_name = r.preprocessor_name, target_spacing = r.overwrite_target_spacing,
    -- the plans identifier the planner will write (preprocess reads that file)
    plans_identifier = r.overwrite_plans_name or loaded and loaded.plans_name or "nnUNetPlans" }
end

--- Parses args; returns opts or nil, exit code.
function M.parse(argv)
  return args.parse_or_status(M.parser(), "plan", argv, function(r)
    if r.DATASET and r.d then error("one DATASET expected", 0) end
    local o = M.options(r)
    o.ds = r.DATASET or r.d
    if not o.ds then error("missing DATASET", 0) end
    return o
  end)
end

--- Plans o.ds with the options of M.options; returns 0, or 2 after a message when the fingerprint is missing.
function M.plan(o)
  local paths = require "lunet.util.paths"
  local json = require "lunet.util.json"
  local fs = require "lunet.util.fs"
  local planner = require "lunet.planner"
  local name = paths.dataset_name(o.ds)
  local raw = paths.join(paths.raw(), name)
  local pre = paths.join(paths.preprocessed(), name)
  local fpfile = paths.join(pre, "dataset_fingerprint.json")
  if not paths.isfile(fpfile) then
    io.stderr:write("lunet plan: " .. fpfile .. " is missing: run `lunet fingerprint " .. o.ds .. "` first\n")
    return 2
  end
  local djfile = paths.join(raw, "dataset.json")
  local dj = json.read(djfile)
  local plans = planner.plan(json.read(fpfile), { dataset_json = dj, rules = o.rules, gpu_memory_gb = o.gpu,
    plans_name = o.plans_name, dataset_name = name, preprocessor_name = o.preprocessor_name,
    overwrite_target_spacing = o.target_spacing })
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

function M.run(argv)
  local o, code = M.parse(argv)
  if not o then return code end
  return M.plan(o)
end

return M
