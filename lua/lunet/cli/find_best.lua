-- lunet find-best: nnUNetv2_find_best_configuration.
local args = require "lunet.cli.args"

local M = args.command({
  summary = "pick the best configuration/ensemble and its postprocessing (find_best_configuration)" })

function M.parser()
  local p = args.parser("find-best", [[
Evaluates the cross-validation of every trained configuration (fold_k/validation), every pairwise
ensemble (from the validation .npz files), picks the best by mean foreground Dice, determines the
postprocessing on it and writes nnUNet_results/<Dataset>/inference_information.json and
inference_instructions.txt (lunet predict / ensemble / postprocess commands).
The rules (candidates, score, tie-break, acceptance) are rules/empirical.lua; --rules replaces them.]])
  p:argument("DATASET", "dataset id or name")
  p:option("-c", "configurations (default 2d 3d_fullres 3d_lowres 3d_cascade_fullres)"):args("+"):argname("CFG")
  p:option("-f", "folds (default 0 1 2 3 4)"):args("+"):argname("FOLD"):convert(args.int("-f", 0))
  p:option("-p", "plans identifiers (default nnUNetPlans)"):args("+"):argname("PLANS")
  p:option("-tr", "trainers (default nnUNetTrainer)"):args("+"):argname("TRAINER")
  p:option("-np", "threads (default 2)"):argname("N"):convert(args.int("-np", 1))
  p:flag("--disable_ensembling", "do not try ensembles of two configurations")
  p:flag("--no_overwrite", "keep the cross-validation results already computed")
  p:option("--rules", "selection rule file replacing rules/empirical.lua"):argname("FILE.lua")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "find-best", argv, function(r)
    local o = { configurations = r.c, folds = r.f, plans = r.p, trainers = r.tr, threads = r.np }
    -- find_best reads only an explicit false as "off"
    if r.disable_ensembling then o.ensembling = false end
    if r.no_overwrite then o.overwrite = false end
    if r.rules then
      local chunk, err = loadfile(r.rules)
      if not chunk then error(err, 0) end
      o.rules = chunk()
    end
    return { ds = r.DATASET, o = o }
  end)
  if not o then return code end
  require("lunet.find_best").run(o.ds, o.o)
  return 0
end

return M
