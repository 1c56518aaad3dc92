-- lunet evaluate REF_DIR PRED_DIR ...: nnUNetv2_evaluate_folder.
local USAGE = [[
usage: lunet evaluate REF_DIR PRED_DIR [-djfile dataset.json] [-pfile plans.json] [-o summary.json] [-np N] [--chill]
       lunet evaluate REF_DIR PRED_DIR -l 1 2 ... [-il IGNORE] [-fe .nii.gz] [-o summary.json] [-np N] [--chill]

Per-case and mean Dice, IoU, TP, FP, FN, TN, n_pred, n_ref for every foreground label (or region) of
dataset.json (default: PRED_DIR/dataset.json), as nnU-Net's compute_metrics_on_folder. Writes
summary.json (default PRED_DIR/summary.json) and prints the foreground mean Dice.
  -djfile F   dataset.json giving labels, regions, ignore label and file ending
  -pfile F    plans.json (accepted for nnU-Net compatibility; labels come from dataset.json)
  -l L...     labels to evaluate instead of a dataset.json (evaluate_simple); -il ignore label; -fe ending
  -o F        output summary file (.json)
  -np N       threads per case (default 2)
  --chill     do not require a prediction for every reference file
]]

local function run(args)
  local pos, o = {}, { threads = 2 }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-djfile" then o.dataset_json = args[i + 1]; i = i + 1
    elseif a == "-pfile" then o.plans = args[i + 1]; i = i + 1
    elseif a == "-o" then o.output_file = args[i + 1]; i = i + 1
    elseif a == "-np" then o.threads = math.tointeger(tonumber(args[i + 1])) or error("-np needs an integer", 0); i = i + 1
    elseif a == "-il" then o.ignore_label = math.tointeger(tonumber(args[i + 1])) or error("-il needs an integer", 0); i = i + 1
    elseif a == "-fe" then o.file_ending = args[i + 1]; i = i + 1
    elseif a == "--chill" then o.chill = true
    elseif a == "-l" then
      o.labels_or_regions = {}
      while args[i + 1] and math.tointeger(tonumber(args[i + 1])) do
        o.labels_or_regions[#o.labels_or_regions + 1] = math.tointeger(tonumber(args[i + 1]))
        i = i + 1
      end
    elseif a:sub(1, 1) == "-" then io.stderr:write("lunet evaluate: unknown option " .. a .. "\n" .. USAGE) return 2
    else pos[#pos + 1] = a end
    i = i + 1
  end
  if #pos ~= 2 then io.stderr:write(USAGE) return 2 end
  local paths = require "lunet.util.paths"
  if not o.labels_or_regions and not o.dataset_json then
    local dj = paths.join(pos[2], "dataset.json")
    if not paths.isfile(dj) then error("no -djfile given and " .. dj .. " does not exist", 0) end
    o.dataset_json = dj
  end
  if o.labels_or_regions and not o.file_ending and not o.dataset_json then o.file_ending = ".nii.gz" end
  local s = require("lunet.evaluate").folder(pos[1], pos[2], o)
  io.write(string.format("foreground mean Dice: %s\n", tostring(s.foreground_mean.Dice)))
  return 0
end

return { summary = "Dice/IoU per case and label as nnU-Net's evaluate_folder; writes summary.json", usage = USAGE, run = run }
