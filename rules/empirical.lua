--[[ Empirical rules: what find-best considers, how it scores and picks, and when postprocessing is kept.
  Pure Lua, no I/O. nnU-Net v2's values (find_best_configuration.py, remove_connected_components.py).
  A user's rule file can start from this one and override any field:
      local R = require "lunet.rules.empirical"; local my = setmetatable({}, {__index = R}); ... return my
  and pass it as `lunet find-best ... --rules my.lua` / find_best.run(ds, {rules = my}).
]]
local R = {}

-- Candidates considered by default, in this order (earlier = preferred on ties).
R.default_configurations = { "2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres" }
R.default_trainers = { "nnUNetTrainer" }
R.default_plans = { "nnUNetPlans" }
R.default_folds = { 0, 1, 2, 3, 4 }
R.allow_ensembling = true

--- Candidate models (nnU-Net's dumb_trainer_config_plans_to_trained_models_dict: trainer, then config, then plans).
function R.candidates(trainers, configurations, plans)
  local out = {}
  for _, t in ipairs(trainers) do
    for _, c in ipairs(configurations) do
      for _, p in ipairs(plans) do out[#out + 1] = { trainer = t, configuration = c, plans = p } end
    end
  end
  return out
end

--- A candidate is considered when its configuration is in the plans (missing results folder is an error).
function R.consider(model, plans_configurations)
  return plans_configurations[model.configuration] ~= nil
end

--- Ensembles: every pair i < j of the considered models, in order (no larger ensembles).
function R.ensembles(models)
  local out = {}
  for i = 1, #models do
    for j = i + 1, #models do out[#out + 1] = { models[i], models[j] } end
  end
  return out
end

--- The score of a candidate from its cross-validation summary: mean foreground Dice.
function R.score(summary)
  return summary.foreground_mean.Dice
end

--- Best of an ordered list { {key=, result=}, ... }: highest score, the first on ties (single
--- configurations come before ensembles, so a tie goes to the simpler model).
function R.pick_best(results)
  local best
  for _, r in ipairs(results) do
    if best == nil or r.result > best.result then best = r end
  end
  return best
end

--- Postprocessing step A (all foreground as one mask): keep iff the foreground-mean Dice strictly
--- increases and no class/region's mean Dice decreases.
function R.accept_foreground(baseline, candidate)
  if not (candidate.foreground_mean.Dice > baseline.foreground_mean.Dice) then return false end
  for key, m in pairs(candidate.mean) do
    if m.Dice < baseline.mean[key].Dice then return false end
  end
  return true
end

--- Step B runs only when there is more than one label/region.
function R.per_class_step(n_labels_or_regions) return n_labels_or_regions > 1 end

--- Step B (one label/region): keep iff that label/region's mean Dice strictly increases.
function R.accept_class(baseline, candidate, key)
  return candidate.mean[key].Dice > baseline.mean[key].Dice
end

--- The postprocessing operation name (nnU-Net's function name, kept for file compatibility).
R.pp_function = "remove_all_but_largest_component_from_segmentation"
-- Connectivity of "connected": full (26 in 3-D, 8 in 2-D), as skimage.measure.label's default.
R.connectivity = 26

return R
