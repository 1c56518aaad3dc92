-- lunet predict-from-modelfolder: nnUNetv2_predict_from_modelfolder, i.e. `lunet predict -m MODEL_FOLDER`.
local args = require "lunet.cli.args"
local predict = require "lunet.cli.predict"

local M = args.command({ summary = "predict with a model folder as it is (nnUNetv2_predict_from_modelfolder)" })

function M.parser()
  local p = args.parser("predict-from-modelfolder", [[
Predicts with a trained model folder as it is (<trainer>__<plans>__<configuration> holding plans.json,
dataset.json and fold_N/), whether Lunet or nnunetv2 trained it; the configuration is read from the
checkpoints. The options are `lunet predict`'s, without -d/-c/-p/-tr: the model folder says them.]])
  predict.declare(p, false)
  -- refused with a reason rather than as unknown options: nnunetv2_predict's habits carried over
  for _, name in ipairs({ "-d", "-c", "-p", "-tr" }) do
    p:option(name):hidden(true):convert(function()
      return nil, name .. " does not apply: the model folder (-m) says it"
    end)
  end
  return p
end

function M.run(argv)
  return predict.run(argv, "predict-from-modelfolder", M.parser())
end

return M
