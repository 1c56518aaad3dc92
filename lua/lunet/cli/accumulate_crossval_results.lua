-- lunet accumulate-crossval-results: nnUNetv2_accumulate_crossval_results.
local args = require "lunet.cli.args"

local M = args.command({
  summary = "merge the folds' validation predictions and evaluate them (accumulate_crossval_results)" })

function M.parser()
  local p = args.parser("accumulate-crossval-results", [[
Copies the validation predictions of every fold of a trained model into one folder and evaluates them together
against the raw labelsTr (summary.json), as nnUNetv2_accumulate_crossval_results. find-best does the same for
every model it compares.]])
  p:argument("DATASET", "dataset id or name")
  p:option("-c", "configuration"):argname("CONFIG"):count(1)
  p:option("-o", "output folder (default <model>/crossval_results_folds_<folds>); must be empty or absent")
    :argname("OUT")
  p:option("-f", "folds (default 0 1 2 3 4)"):args("+"):argname("FOLD"):convert(args.int("-f", 0))
  p:option("-p", "plans identifier (default nnUNetPlans)"):argname("PLANS")
  p:option("-tr", "trainer (default nnUNetTrainer)"):argname("TRAINER")
  p:option("-np", "threads per case for the evaluation (default 2)"):argname("N"):convert(args.int("-np", 1))
  return p
end

function M.run(argv)
  local r, code = args.parse_or_status(M.parser(), "accumulate-crossval-results", argv)
  if not r then return code end
  local o = { configuration = r.c, output = r.o, folds = r.f, plans = r.p, trainer = r.tr, threads = r.np }
  local summary, merged = require("lunet.crossval").accumulate(r.DATASET, r.c, o)
  io.write(string.format("foreground mean Dice %.4f -> %s/summary.json\n", summary.foreground_mean.Dice, merged))
  return 0
end

return M
