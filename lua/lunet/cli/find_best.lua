-- lunet find-best: nnUNetv2_find_best_configuration.
local USAGE = [[
usage: lunet find-best DATASET [-c CFG ...] [-f FOLD ...] [-p PLANS ...] [-tr TRAINER ...] [-np N]
                       [--disable_ensembling] [--no_overwrite] [--rules FILE.lua]

Evaluates the cross-validation of every trained configuration (fold_k/validation), every pairwise
ensemble (from the validation .npz files), picks the best by mean foreground Dice, determines the
postprocessing on it and writes nnUNet_results/<Dataset>/inference_information.json and
inference_instructions.txt (lunet predict / ensemble / postprocess commands).
Defaults: -c 2d 3d_fullres 3d_lowres 3d_cascade_fullres, -f 0 1 2 3 4, -p nnUNetPlans, -tr nnUNetTrainer.
The rules (candidates, score, tie-break, acceptance) are rules/empirical.lua; --rules replaces them.
]]

local function list(args, i, out)
  while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do out[#out + 1] = args[i + 1]; i = i + 1 end
  return i
end

local function run(args)
  local o, ds = {}, nil
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-c" then o.configurations = {}; i = list(args, i, o.configurations)
    elseif a == "-p" then o.plans = {}; i = list(args, i, o.plans)
    elseif a == "-tr" then o.trainers = {}; i = list(args, i, o.trainers)
    elseif a == "-f" then
      local f = {}
      i = list(args, i, f)
      o.folds = {}
      for k, v in ipairs(f) do o.folds[k] = math.tointeger(tonumber(v)) or error("-f: bad fold " .. v, 0) end
    elseif a == "-np" then o.threads = math.tointeger(tonumber(args[i + 1])) or error("-np needs an integer", 0); i = i + 1
    elseif a == "--disable_ensembling" then o.ensembling = false
    elseif a == "--no_overwrite" then o.overwrite = false
    elseif a == "--rules" then
      local f = args[i + 1]
      i = i + 1
      local chunk, err = loadfile(f)
      if not chunk then error(err, 0) end
      o.rules = chunk()
    elseif a:sub(1, 1) == "-" then io.stderr:write("lunet find-best: unknown option " .. a .. "\n" .. USAGE) return 2
    else ds = a end
    i = i + 1
  end
  if not ds then io.stderr:write(USAGE) return 2 end
  require("lunet.find_best").run(ds, o)
  return 0
end

return { summary = "pick the best configuration/ensemble and its postprocessing (find_best_configuration)", usage = USAGE, run = run }
