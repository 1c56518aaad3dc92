-- lunet export-model: nnUNetv2_export_model_to_zip.
local args = require "lunet.cli.args"

local M = args.command({ summary = "export trained models to a zip (nnUNetv2_export_model_to_zip)" })

function M.parser()
  local p = args.parser("export-model", [[
Writes the trained models of DATASET into a zip with nnU-Net's layout (paths relative to nnUNet_results),
which `lunet install-model` and nnUNetv2_install_pretrained_model_from_zip both install.]])
  p:option("-d", "dataset id or name"):argname("DATASET"):count(1)
  p:option("-o", "the zip file to write"):argname("FILE.zip"):count(1)
  p:option("-c", "configurations (default 2d 3d_lowres 3d_fullres 3d_cascade_fullres)"):args("+"):argname("CONFIG")
  p:option("-tr", "trainer (default nnUNetTrainer)"):argname("TRAINER")
  p:option("-p", "plans identifier (default nnUNetPlans)"):argname("PLANS")
  p:option("-f", "folds (default 0 1 2 3 4)"):args("+"):argname("FOLD"):convert(args.fold("-f"))
  p:option("-chk", "checkpoints to include (default checkpoint_final.pth)"):args("+"):argname("NAME")
  p:flag("--not_strict", "skip configurations that were not trained instead of failing (also --not-strict)")
  p:flag("--exp_cv_preds", "include the cross-validation predictions (also --exp-cv-preds)")
  return p
end

--- Parses args into model_sharing.export's options; { help = true } for -h. Raises error(msg, 0) on a mistake.
function M.parse(argv)
  local r = args.parse(M.parser(), argv)
  if r.help then return r end
  local o = { dataset = r.d, output = r.o, configurations = r.c, trainer = r.tr, plans = r.p, folds = r.f,
    checkpoints = r.chk, export_crossval_predictions = r.exp_cv_preds }
  if r.not_strict then o.strict = false end -- model_sharing reads only an explicit false as "not strict"
  return o
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "export-model", argv, function() return M.parse(argv) end)
  if not o then return code end
  local names = require("lunet.model_sharing").export(o)
  io.write(("exported %d files into %s\n"):format(#names, o.output))
  return 0
end

return M
