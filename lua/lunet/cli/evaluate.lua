-- lunet evaluate REF_DIR PRED_DIR ...: nnUNetv2_evaluate_folder (and nnUNetv2_evaluate_simple with -l).
local args = require "lunet.cli.args"

local M = args.command({
  summary = "Dice/IoU per case and label as nnU-Net's evaluate_folder; writes summary.json" })

function M.parser()
  local p = args.parser("evaluate", [[
Per-case and mean Dice, IoU, TP, FP, FN, TN, n_pred, n_ref for every foreground label (or region) of
dataset.json (default: PRED_DIR/dataset.json), as nnU-Net's compute_metrics_on_folder, or for the labels given
with -l (nnUNetv2_evaluate_simple). Writes summary.json (default PRED_DIR/summary.json) and prints the foreground
mean Dice.]])
  p:argument("REF_DIR", "reference segmentations")
  p:argument("PRED_DIR", "predicted segmentations")
  p:option("-djfile", "dataset.json giving labels, regions, ignore label and file ending"):argname("FILE")
  p:option("-pfile", "plans.json (accepted for nnU-Net compatibility; labels come from dataset.json)")
    :argname("FILE")
  p:option("-l", "labels to evaluate instead of a dataset.json's (evaluate_simple)"):args("+"):argname("L")
    :convert(args.int("-l"))
  p:option("-il", "ignore label (with -l)"):argname("L"):convert(args.int("-il"))
  p:option("-fe", "file ending (with -l; default .nii.gz)"):argname("ENDING")
  p:option("-o", "output summary file (.json)"):argname("FILE")
  p:option("-np", "threads per case (default 2)"):argname("N"):convert(args.int("-np", 1))
  p:flag("--chill", "do not require a prediction for every reference file")
  return p
end

function M.run(argv)
  local r, code = args.parse_or_status(M.parser(), "evaluate", argv)
  if not r then return code end
  local o = { threads = r.np or 2, dataset_json = r.djfile, plans = r.pfile, output_file = r.o, ignore_label = r.il,
    file_ending = r.fe, chill = r.chill, labels_or_regions = r.l }
  local paths = require "lunet.util.paths"
  if not o.labels_or_regions and not o.dataset_json then
    local dj = paths.join(r.PRED_DIR, "dataset.json")
    if not paths.isfile(dj) then error("no -djfile given and " .. dj .. " does not exist", 0) end
    o.dataset_json = dj
  end
  if o.labels_or_regions and not o.file_ending and not o.dataset_json then o.file_ending = ".nii.gz" end
  local s = require("lunet.evaluate").folder(r.REF_DIR, r.PRED_DIR, o)
  io.write(string.format("foreground mean Dice: %s\n", tostring(s.foreground_mean.Dice)))
  return 0
end

return M
