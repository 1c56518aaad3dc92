--[==[ lunet.nnunet_names: nnU-Net v2's command names (nnUNetv2_*) mapped onto lunet's commands, so a shell script
written for nnU-Net runs with Lunet once the wrappers' folder is first on PATH (docs/guide.md, "nnU-Net's names").

  local nn = require "lunet.nnunet_names"
  nn.names()                     -> sorted list of the nnUNetv2_* names Lunet answers to
  nn.translate(name, argv)       -> list of { command, args }: the lunet command(s) that do what `name argv` does
                                    in nnU-Net (several where nnU-Net's -d takes several datasets and Lunet's
                                    command one). Errors name the nnU-Net option Lunet cannot honour.
  nn.run(name, argv)             -> exit code: runs the translation through the command modules
  nn.wrapper(name)               -> text of the thin shell wrapper for name
  nn.write_wrappers(dir)         -> list of files written (atomic; executable)

Most lunet commands already accept nnU-Net's spellings; the table below lists only what differs: options whose
value must be nnU-Net's default (Lunet has one fingerprint extractor and one preprocessor), options that have no
effect here (--not_on_device: OpenCL picks where buffers live), and positional/flag swaps.
]==]
local M = {}

-- Per nnU-Net name: the lunet command, and how nnU-Net's arguments differ.
--   drop       flag -> number of values it takes (0: a switch), dropped because they change nothing in Lunet
--   defaults   flag -> the only value Lunet honours (nnU-Net's default); another value is an error
--   rename     flag -> lunet's flag ("" makes the value positional)
--   refuse     flag -> why Lunet cannot honour it
--   per_dataset  nnU-Net's -d ID [ID ...]: one lunet run per dataset, the dataset first and positional
--   verify     flag that runs `lunet verify DATASET` first (stopping on a problem), as nnU-Net's integrity check
local COMMANDS = {
  nnUNetv2_plan_and_preprocess = { command = "plan-and-preprocess",
    drop = { ["--verbose"] = 0 }, rename = { ["--no_pbar"] = "-q" },
    defaults = { ["-fpe"] = "DatasetFingerprintExtractor", ["-preprocessor_name"] = "DefaultPreprocessor" } },
  nnUNetv2_extract_fingerprint = { command = "fingerprint", per_dataset = true, verify = "--verify_dataset_integrity",
    drop = { ["--verbose"] = 0 }, defaults = { ["-fpe"] = "DatasetFingerprintExtractor" } },
  nnUNetv2_plan_experiment = { command = "plan", per_dataset = true,
    defaults = { ["-preprocessor_name"] = "DefaultPreprocessor" } },
  nnUNetv2_preprocess = { command = "preprocess", per_dataset = true, rename = { ["--verbose"] = "-v" } },
  nnUNetv2_train = { command = "train", defaults = { ["-num_gpus"] = "1" } },
  nnUNetv2_predict = { command = "predict", drop = { ["--not_on_device"] = 0 } },
  nnUNetv2_predict_from_modelfolder = { command = "predict-from-modelfolder", drop = { ["--not_on_device"] = 0 } },
  nnUNetv2_find_best_configuration = { command = "find-best" },
  nnUNetv2_accumulate_crossval_results = { command = "accumulate-crossval-results" },
  nnUNetv2_ensemble = { command = "ensemble" },
  nnUNetv2_determine_postprocessing = { command = "postprocess" },
  nnUNetv2_apply_postprocessing = { command = "postprocess" },
  nnUNetv2_evaluate_folder = { command = "evaluate" },
  nnUNetv2_evaluate_simple = { command = "evaluate" },
  nnUNetv2_convert_MSD_dataset = { command = "convert-msd", rename = { ["-i"] = "" }, drop = { ["-np"] = 1 } },
  nnUNetv2_convert_old_nnUNet_dataset = { command = "convert-old-dataset" },
  nnUNetv2_export_model_to_zip = { command = "export-model" },
  nnUNetv2_install_pretrained_model_from_zip = { command = "install-model" },
  nnUNetv2_download_pretrained_model_by_url = { command = "download-model" },
  nnUNetv2_move_plans_between_datasets = { command = "move-plans-between-datasets" },
  nnUNetv2_plot_overlay_pngs = { command = "plot-overlay-pngs" },
}
M.COMMANDS = COMMANDS

function M.names()
  local out = {}
  for k in pairs(COMMANDS) do out[#out + 1] = k end
  table.sort(out)
  return out
end

local function is_flag(a) return a:sub(1, 1) == "-" and not tonumber(a) end

function M.translate(name, argv)
  local spec = COMMANDS[name]
  if not spec then error("unknown nnU-Net command " .. tostring(name) .. " (lunet nnunet --list names them)", 2) end
  local args, datasets, verify = {}, nil, false
  local i = 1
  while i <= #argv do
    local a = argv[i]
    if spec.drop and spec.drop[a] then
      i = i + spec.drop[a]
    elseif spec.defaults and spec.defaults[a] then
      local v = argv[i + 1]
      if v ~= spec.defaults[a] then
        error(string.format("%s %s: Lunet has only nnU-Net's default here (%s %s)", a, tostring(v), a,
          spec.defaults[a]), 2)
      end
      i = i + 1
    elseif spec.refuse and spec.refuse[a] then
      error(a .. " is not supported by Lunet: " .. spec.refuse[a], 2)
    elseif spec.verify and a == spec.verify then
      verify = true
    elseif spec.per_dataset and a == "-d" then
      datasets = datasets or {}
      while argv[i + 1] and not is_flag(argv[i + 1]) do datasets[#datasets + 1] = argv[i + 1]; i = i + 1 end
    elseif spec.rename and spec.rename[a] then
      if spec.rename[a] ~= "" then args[#args + 1] = spec.rename[a] end
    else
      args[#args + 1] = a
    end
    i = i + 1
  end
  if not datasets then return { { spec.command, args } } end
  if #datasets == 0 then error("-d needs at least one dataset", 2) end
  local runs = {}
  for _, ds in ipairs(datasets) do
    if verify then runs[#runs + 1] = { "verify", { ds } } end
    local t = { ds }
    table.move(args, 1, #args, 2, t)
    runs[#runs + 1] = { spec.command, t }
  end
  return runs
end

--- Runs name argv through the command modules in this process; the first non-zero exit code stops it.
function M.run(name, argv)
  local ok, runs = pcall(M.translate, name, argv)
  if not ok then
    io.stderr:write(name .. ": " .. tostring(runs):gsub("^[^:]*:%d+: ", "") .. "\n")
    return 2
  end
  local cli = require "lunet.cli"
  for _, r in ipairs(runs) do
    local mod = cli.command_module(r[1])
    if not mod then io.stderr:write(name .. ": lunet has no command " .. r[1] .. "\n") return 2 end
    local rc = mod.run(r[2]) or 0
    if rc ~= 0 then return rc end
  end
  return 0
end

--- The wrapper: finds `lunet` beside itself (installed together in bin/), one folder up (scripts/nnunet-names/ in a
--- checkout), else on PATH.
function M.wrapper(name)
  assert(COMMANDS[name], name)
  return table.concat({
    "#!/bin/sh",
    "# " .. name .. " as nnU-Net v2 spells it, run by Lunet (`lunet " .. COMMANDS[name].command .. "`).",
    "# Generated by `lunet nnunet --write-wrappers DIR`; put DIR first on PATH.",
    'here=$(dirname "$0")',
    'for l in "$here/lunet" "$here/../lunet"; do',
    '  if [ -x "$l" ] && [ ! -d "$l" ]; then exec "$l" nnunet ' .. name .. ' "$@"; fi',
    "done",
    "exec lunet nnunet " .. name .. ' "$@"',
    "",
  }, "\n")
end

function M.write_wrappers(dir)
  local paths = require "lunet.util.paths"
  local fs = require "lunet.util.fs"
  paths.mkdirs(dir)
  local out = {}
  for _, n in ipairs(M.names()) do
    local p = paths.join(dir, n)
    fs.write_atomic(p, M.wrapper(n))
    -- no chmod in Lua's standard library; lfs cannot set modes either
    if not os.execute("chmod 755 '" .. p:gsub("'", "'\\''") .. "'") then error(p .. ": chmod failed", 2) end
    out[#out + 1] = p
  end
  return out
end

return M
