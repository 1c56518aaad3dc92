-- lunet accumulate-crossval-results: nnUNetv2_accumulate_crossval_results.
local USAGE = [[
usage: lunet accumulate-crossval-results DATASET -c CONFIG [-o OUT] [-f FOLD ...] [-p PLANS] [-tr TRAINER] [-np N]

Copies the validation predictions of every fold of a trained model into one folder and evaluates them together
against the raw labelsTr (summary.json), as nnUNetv2_accumulate_crossval_results. find-best does the same for
every model it compares.
  -c CONFIG     configuration (required)
  -o OUT        output folder (default <model>/crossval_results_folds_<folds>); must be empty or absent
  -f FOLD ...   folds (default 0 1 2 3 4)
  -p / -tr      plans (nnUNetPlans) and trainer (nnUNetTrainer)
  -np N         threads per case for the evaluation (default 2)
]]

local function run(args)
  local o, ds = {}, nil
  local i = 1
  local function val(a)
    i = i + 1
    if args[i] == nil then error(a .. " needs a value", 0) end
    return args[i]
  end
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-c" then o.configuration = val(a)
    elseif a == "-o" then o.output = val(a)
    elseif a == "-p" then o.plans = val(a)
    elseif a == "-tr" then o.trainer = val(a)
    elseif a == "-np" then o.threads = math.tointeger(tonumber(val(a))) or error("-np needs an integer", 0)
    elseif a == "-f" then
      o.folds = {}
      while args[i + 1] and args[i + 1]:match("^%d+$") do
        i = i + 1
        o.folds[#o.folds + 1] = math.tointeger(tonumber(args[i]))
      end
      if #o.folds == 0 then error("-f needs fold numbers", 0) end
    elseif a:sub(1, 1) == "-" then io.stderr:write("lunet accumulate-crossval-results: unknown option " .. a .. "\n" .. USAGE) return 2
    elseif ds then io.stderr:write("lunet accumulate-crossval-results: one DATASET expected\n" .. USAGE) return 2
    else ds = a end
    i = i + 1
  end
  if not ds or not o.configuration then io.stderr:write(USAGE) return 2 end
  local summary, merged = require("lunet.crossval").accumulate(ds, o.configuration, o)
  io.write(string.format("foreground mean Dice %.4f -> %s/summary.json\n", summary.foreground_mean.Dice, merged))
  return 0
end

return { summary = "merge the folds' validation predictions and evaluate them (accumulate_crossval_results)",
         usage = USAGE, run = run }
