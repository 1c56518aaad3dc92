-- lunet predict-from-modelfolder: nnUNetv2_predict_from_modelfolder, i.e. `lunet predict -m MODEL_FOLDER`.
local predict = require "lunet.cli.predict"

local USAGE = [[
usage: lunet predict-from-modelfolder -i IN -o OUT -m MODEL_FOLDER [-f 0 1 2 3 4 | all] [-chk checkpoint_final]
                                      [predict's other options]

Predicts with a trained model folder as it is (<trainer>__<plans>__<configuration> holding plans.json,
dataset.json and fold_N/), whether Lunet or nnunetv2 trained it; the configuration is read from the
checkpoints. Same options as `lunet predict` (lunet predict -h), without -d/-c/-p/-tr.
]]

local M = { summary = "predict with a model folder as it is (nnUNetv2_predict_from_modelfolder)", usage = USAGE }

function M.run(args)
  for _, a in ipairs(args) do
    if a == "-h" or a == "--help" then io.write(USAGE) return 0 end
    if a == "-d" or a == "-c" or a == "-p" or a == "-tr" then
      io.stderr:write("lunet predict-from-modelfolder: " .. a .. " does not apply: the model folder (-m) says it\n" .. USAGE)
      return 2
    end
  end
  local has_m = false
  for _, a in ipairs(args) do if a == "-m" then has_m = true end end
  if not has_m then io.stderr:write("lunet predict-from-modelfolder: missing -m\n" .. USAGE) return 2 end
  return predict.run(args)
end

return M
