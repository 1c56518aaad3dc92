-- `lunet plan_and_preprocess DATASET ...`: nnUNetv2_plan_and_preprocess (fingerprint, plan, preprocess).
local USAGE = [==[
usage: lunet plan_and_preprocess DATASET... [-c 2d 3d_fullres 3d_lowres] [-np N [N ...]] [-npfp N]
                                 [-pl RULES] [--gpu-memory GB] [-overwrite_plans_name NAME] [--clean]
                                 [--no_pp] [--verify_dataset_integrity] [-q]

Runs `lunet fingerprint`, `lunet plan` and `lunet preprocess` on DATASET in one go; several datasets (or nnU-Net's
`-d 1 2 3`) are done one after another with the same options, stopping at the first that fails.

  -c CFG ...      configurations to preprocess (default: 2d 3d_fullres 3d_lowres)
  -np N ...       preprocessing threads (one, or one per configuration; default 2)
  -npfp N         fingerprint threads (default 2)
  -pl RULES       planner rules (default, resenc_m, resenc_l, resenc_xl, a rule file or nnU-Net planner name)
  --gpu-memory GB VRAM target for the planner
  -overwrite_plans_name NAME  plans identifier
  --clean         recompute the fingerprint even if it exists, and redo every preprocessed case
                  (preprocess --clean); without it, stale cases are still redone (see lunet preprocess -h)
  --no_pp         stop after planning
  --verify_dataset_integrity  run `lunet verify` first and stop (exit 1) when it finds a problem
  -q              no progress bars
]==]

local function fail(msg) io.stderr:write("lunet plan_and_preprocess: " .. msg .. "\n"); return 2 end

--- One dataset: verify (asked), fingerprint, plan, preprocess; the options of all three checked first.
local function run_one(ds, fp_args, plan_args, pp_args, no_pp, quiet, verify)
  -- every option of the three steps is checked before the first one writes anything
  local fp_cli, plan_cli, pp_cli = require "lunet.cli.fingerprint", require "lunet.cli.plan", require "lunet.cli.preprocess"
  for _, step in ipairs({ { fp_cli, fp_args }, { plan_cli, plan_args }, { pp_cli, pp_args } }) do
    local o, code = step[1].parse(step[2])
    if not o then return code end
  end
  if verify then
    -- nnU-Net's --verify_dataset_integrity: the raw dataset is checked before anything is computed from it
    local vargs = { ds }
    if quiet then vargs[2] = "-q" end
    local vrc = require("lunet.cli.verify").run(vargs)
    if vrc ~= 0 then return vrc end
  end
  local rc = fp_cli.run(fp_args)
  if rc ~= 0 then return rc end
  rc = plan_cli.run(plan_args)
  if rc ~= 0 or no_pp then return rc end
  -- preprocess with the plans name the planner used
  local has_name = false
  for _, a in ipairs(pp_args) do if a == "-plans_name" then has_name = true end end
  if not has_name then
    local p
    for k = 2, #plan_args - 1 do if plan_args[k] == "-pl" then p = plan_args[k + 1] end end
    if p then
      local ok, planner = pcall(require, "lunet.planner")
      if ok and planner.load_rules then
        local okr, rules = pcall(planner.load_rules, p)
        if okr and type(rules) == "table" and rules.plans_name then
          pp_args[#pp_args + 1] = "-plans_name"; pp_args[#pp_args + 1] = rules.plans_name
        end
      end
    end
  end
  return pp_cli.run(pp_args)
end

return {
  summary = "fingerprint + plan + preprocess a dataset (nnUNetv2_plan_and_preprocess)",
  usage = USAGE,
  run = function(args)
    local datasets = {}
    local fp_args, plan_args, pp_args = {}, {}, {}
    local no_pp, quiet, verify = false, false, false
    local i = 1
    local function take_list(dst, flag)
      dst[#dst + 1] = flag
      while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do dst[#dst + 1] = args[i + 1]; i = i + 1 end
    end
    while i <= #args do
      local a = args[i]
      if a == "-h" or a == "--help" then io.write(USAGE); return 0
      elseif a == "-c" or a == "-np" then take_list(pp_args, a)
      elseif a == "-npfp" then
        local n = math.tointeger(tonumber(args[i + 1] or ""))
        if not n or n < 1 then return fail("-npfp needs a positive integer, got " .. tostring(args[i + 1])) end
        fp_args[#fp_args + 1] = "-np"; fp_args[#fp_args + 1] = args[i + 1]; i = i + 1
      elseif a == "-pl" or a == "--gpu-memory" or a == "-gpu_memory_target" then
        plan_args[#plan_args + 1] = a; plan_args[#plan_args + 1] = args[i + 1]; i = i + 1
      elseif a == "-overwrite_plans_name" then
        plan_args[#plan_args + 1] = a; plan_args[#plan_args + 1] = args[i + 1]
        pp_args[#pp_args + 1] = "-plans_name"; pp_args[#pp_args + 1] = args[i + 1]; i = i + 1
      elseif a == "--clean" then fp_args[#fp_args + 1] = "--clean"; pp_args[#pp_args + 1] = "--clean"
      elseif a == "--no_pp" then no_pp = true
      elseif a == "--verify_dataset_integrity" or a == "--verify-dataset-integrity" then verify = true
      elseif a == "-q" then quiet = true
      elseif a == "-d" then
        if not args[i + 1] or args[i + 1]:sub(1, 1) == "-" then return fail("-d needs at least one dataset") end
        while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do datasets[#datasets + 1] = args[i + 1]; i = i + 1 end
      elseif a:sub(1, 1) == "-" then return fail("unknown option " .. a .. "\n" .. USAGE)
      else datasets[#datasets + 1] = a end
      i = i + 1
    end
    if #datasets == 0 then io.stderr:write(USAGE); return 2 end
    if quiet then fp_args[#fp_args + 1] = "-q"; pp_args[#pp_args + 1] = "-q" end
    for _, ds in ipairs(datasets) do
      local function with(list) local t = { ds }; table.move(list, 1, #list, 2, t); return t end
      local rc = run_one(ds, with(fp_args), with(plan_args), with(pp_args), no_pp, quiet, verify)
      if rc ~= 0 then return rc end
    end
    return 0
  end,
}
