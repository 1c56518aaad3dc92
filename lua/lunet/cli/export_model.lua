-- lunet export-model: nnUNetv2_export_model_to_zip.
local USAGE = [[
usage: lunet export-model -d DATASET -o FILE.zip [-c CONFIG...] [-tr trainer] [-p plans] [-f 0 1 2 3 4 | all]
                          [-chk checkpoint_final.pth...] [--not-strict] [--exp-cv-preds]

Writes the trained models of DATASET into a zip with nnU-Net's layout (paths relative to nnUNet_results),
which `lunet install-model` and nnUNetv2_install_pretrained_model_from_zip both install.
  -c CONFIG...      configurations (default 2d 3d_lowres 3d_fullres 3d_cascade_fullres)
  -tr / -p          trainer (nnUNetTrainer) and plans (nnUNetPlans)
  -f F...           folds (default 0 1 2 3 4)
  -chk NAME...      checkpoints to include (default checkpoint_final.pth)
  --not-strict      skip configurations that were not trained instead of failing
  --exp-cv-preds    include the cross-validation predictions
]]

local M = { summary = "export trained models to a zip (nnUNetv2_export_model_to_zip)", usage = USAGE }

function M.parse(args)
  local o = {}
  local i = 1
  local function list()
    local t = {}
    while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do t[#t + 1] = args[i + 1]; i = i + 1 end
    if #t == 0 then error(args[i] .. " needs at least one value", 0) end
    return t
  end
  local function val()
    local v = args[i + 1]
    if v == nil then error(args[i] .. " needs a value", 0) end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then o.help = true
    elseif a == "-d" then o.dataset = val()
    elseif a == "-o" then o.output = val()
    elseif a == "-c" then o.configurations = list()
    elseif a == "-tr" then o.trainer = val()
    elseif a == "-p" then o.plans = val()
    elseif a == "-f" then
      o.folds = {}
      for k, v in ipairs(list()) do
        o.folds[k] = v == "all" and "all" or math.tointeger(tonumber(v)) or error("-f: not a fold: " .. v, 0)
      end
    elseif a == "-chk" then o.checkpoints = list()
    elseif a == "--not-strict" or a == "--not_strict" then o.strict = false
    elseif a == "--exp-cv-preds" or a == "--exp_cv_preds" then o.export_crossval_predictions = true
    else error("unknown option " .. a, 0) end
    i = i + 1
  end
  if not o.help then
    if not o.dataset then error("missing -d", 0) end
    if not o.output then error("missing -o", 0) end
  end
  return o
end

function M.run(args)
  local ok, o = pcall(M.parse, args)
  if not ok then io.stderr:write("lunet export-model: " .. tostring(o) .. "\n" .. USAGE) return 2 end
  if o.help then io.write(USAGE) return 0 end
  local names = require("lunet.model_sharing").export(o)
  io.write(("exported %d files into %s\n"):format(#names, o.output))
  return 0
end

return M
