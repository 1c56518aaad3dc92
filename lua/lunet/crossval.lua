--[==[ lunet.crossval: nnU-Net's nnUNetv2_accumulate_crossval_results (evaluation/accumulate_cv_results.py).

  local crossval = require "lunet.crossval"
  crossval.accumulate(dataset, configuration, opts) -> summary, merged_folder
      opts.folds {0,1,2,3,4}, opts.plans "nnUNetPlans", opts.trainer "nnUNetTrainer", opts.threads,
      opts.output   merged folder (default <model>/crossval_results_folds_<folds>); as nnU-Net, an explicit
                    folder must be empty or absent so that nothing of the user's is removed

Copies every fold_k/validation/<case><file_ending> of the model into the merged folder (a case predicted by two folds
is an error), copies plans.json and dataset.json, and evaluates against nnUNet_raw/<Dataset>/labelsTr (else
nnUNet_preprocessed/<Dataset>/gt_segmentations) into summary.json: the same folder find-best builds per model.
]==]
local paths = require "lunet.util.paths"

local M = {}

function M.accumulate(dataset, configuration, opts)
  opts = opts or {}
  local folds = opts.folds or { 0, 1, 2, 3, 4 }
  local model = paths.output_folder(dataset, opts.trainer or "nnUNetTrainer", opts.plans or "nnUNetPlans",
    configuration)
  if not paths.isdir(model) then error(model .. ": no trained model folder (train it first)", 2) end
  local merged = opts.output
  if merged then
    if paths.isdir(merged) and #paths.listdir(merged) > 0 then
      error(merged .. ": output folder exists and is not empty; nnU-Net requires an empty output folder " ..
        "to avoid data loss", 2)
    end
  else
    merged = paths.join(model, paths.crossval_folder_name(folds))
  end
  local ok, summary = pcall(require("lunet.find_best").accumulate_cv, model, merged, folds, { threads = opts.threads })
  if not ok then error(summary, 2) end
  return summary, merged
end

return M
