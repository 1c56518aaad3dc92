--[==[ lunet.find_best: nnU-Net's find_best_configuration (evaluation/find_best_configuration.py).

  local fb = require "lunet.find_best"
  fb.run(dataset, opts) -> info (the inference_information.json content)
      opts.configurations {"2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres"}, opts.trainers {"nnUNetTrainer"},
      opts.plans {"nnUNetPlans"}, opts.folds {0,1,2,3,4}, opts.ensembling (true), opts.overwrite (true),
      opts.threads, opts.rules (default lunet.rules.empirical), opts.read / opts.write (image I/O hooks)
  fb.accumulate_cv(model_dir, merged_dir, folds, opts)   -- nnU-Net's accumulate_cv_results
  fb.instructions(info) -> text                            -- inference_instructions.txt (lunet commands)

Writes, as nnU-Net: <model>/crossval_results_folds_<folds>/ (+summary.json), ensembles/ensemble___<m1>___<m2>___<folds>/,
postprocessing.pkl/.json + postprocessed/ in the winner's folder, and nnUNet_results/<Dataset>/inference_information.json
+ inference_instructions.txt, which name postprocessing.pkl as nnU-Net's do (lunet postprocess reads either).
]==]
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local evaluate = require "lunet.evaluate"
local ensemble = require "lunet.ensemble"
local postprocess = require "lunet.postprocess"

local M = {}

local function read_data(opts)
  if opts.read then return function(p) return opts.read(p).data end end
  return nil
end

local function eval_opts(dj, opts, output_file)
  local s = evaluate.label_settings(dj)
  return { labels_or_regions = s.labels_or_regions, ignore_label = s.ignore_label, file_ending = dj.file_ending,
    threads = opts.threads, output_file = output_file, chill = true, read = read_data(opts) }
end

function M.accumulate_cv(model_dir, merged_dir, folds, opts)
  opts = opts or {}
  if opts.overwrite ~= false then fs.rmtree(merged_dir) end
  paths.mkdirs(merged_dir)
  local dj = json.read(paths.join(model_dir, "dataset.json"))
  local plans = json.read(paths.join(model_dir, "plans.json"))
  fs.copy_atomic(paths.join(model_dir, "dataset.json"), paths.join(merged_dir, "dataset.json"))
  fs.copy_atomic(paths.join(model_dir, "plans.json"), paths.join(merged_dir, "plans.json"))
  local copied = false
  for _, f in ipairs(folds) do
    local v = paths.join(model_dir, "fold_" .. f, "validation")
    if not paths.isdir(v) then error("fold " .. f .. " of model " .. model_dir .. " is missing. Please train it!", 2) end
    for _, pf in ipairs(evaluate.list_files(v, dj.file_ending)) do
      local dst = paths.join(merged_dir, pf)
      if opts.overwrite ~= false and paths.isfile(dst) then
        error("More than one of your folds has a prediction for case " .. pf, 2)
      end
      if opts.overwrite ~= false or not paths.isfile(dst) then
        fs.copy_atomic(paths.join(v, pf), dst)
        copied = true
      end
    end
  end
  local summary_file = paths.join(merged_dir, "summary.json")
  if copied or not paths.isfile(summary_file) then
    local gt = paths.join(paths.raw(), plans.dataset_name, "labelsTr")
    if not paths.isdir(gt) then gt = paths.join(paths.preprocessed(), plans.dataset_name, "gt_segmentations") end
    evaluate.folder(gt, merged_dir, eval_opts(dj, opts, summary_file))
  end
  return json.read(summary_file)
end

local function plans_configurations(dataset_name, plans_name)
  local pf = paths.join(paths.preprocessed(), dataset_name, plans_name .. ".json")
  if not paths.isfile(pf) then error(pf .. ": plans file not found", 3) end
  return json.read(pf).configurations or {}
end

function M.run(dataset, opts)
  opts = opts or {}
  local R = opts.rules or require("lunet.rules.empirical")
  local name = paths.dataset_name(dataset)
  local folds = opts.folds or R.default_folds
  local fstr = paths.folds_string(folds)
  local allow_ens = opts.ensembling
  if allow_ens == nil then allow_ens = R.allow_ensembling end
  local cands = R.candidates(opts.trainers or R.default_trainers, opts.configurations or R.default_configurations,
    opts.plans or R.default_plans)
  local models = {}
  for _, m in ipairs(cands) do
    if R.consider(m, plans_configurations(name, m.plans)) then
      local dir = paths.output_folder(name, m.trainer, m.plans, m.configuration)
      if not paths.isdir(dir) then
        error(string.format("Trained model %s__%s__%s does not have an output folder. Expected: %s. Please run the " ..
          "training for this model! (don't forget the --npz flag if you want to ensemble multiple configurations)",
          m.trainer, m.plans, m.configuration, dir), 2)
      end
      m.dir = dir
      models[#models + 1] = m
    else
      io.stderr:write(string.format("Configuration %s not found in plans %s.\n", m.configuration, m.plans))
    end
  end
  if #models == 0 then error(name .. ": no trained configuration to evaluate", 2) end
  local results = {}
  for _, m in ipairs(models) do
    local merged = paths.join(m.dir, "crossval_results_folds_" .. fstr)
    local s = M.accumulate_cv(m.dir, merged, folds, opts)
    results[#results + 1] = { key = paths.basename(m.dir), source = merged, result = R.score(s) }
  end
  local gt_pre = paths.join(paths.preprocessed(), name, "gt_segmentations")
  if allow_ens then
    for _, pair in ipairs(R.ensembles(models)) do
      local id = "ensemble___" .. paths.basename(pair[1].dir) .. "___" .. paths.basename(pair[2].dir) .. "___" .. fstr
      local out = paths.join(paths.results(), name, "ensembles", id)
      ensemble.crossvalidations({ pair[1].dir, pair[2].dir }, out, folds,
        { overwrite = opts.overwrite, read = opts.read, write = opts.write })
      local dj = json.read(paths.join(pair[1].dir, "dataset.json"))
      local s = evaluate.folder(gt_pre, out, eval_opts(dj, opts, paths.join(out, "summary.json")))
      results[#results + 1] = { key = id, source = out, result = R.score(s) }
    end
  end
  local best = R.pick_best(results)
  postprocess.determine(best.source, gt_pre, {
    plans_json = paths.join(best.source, "plans.json"), dataset_json = paths.join(best.source, "dataset.json"),
    threads = opts.threads, rules = R, read = opts.read, write = opts.write,
  })
  local post = json.read(paths.join(best.source, "postprocessed", "summary.json"))
  local all = {}
  for _, r in ipairs(results) do all[r.key] = r.result end
  local considered = json.array({})
  for i, m in ipairs(models) do considered[i] = { plans = m.plans, configuration = m.configuration, trainer = m.trainer } end
  local selected = json.array({})
  local ids = {}
  if best.key:match("^ensemble___") then
    local m1, m2 = best.key:match("^ensemble___(.-)___(.-)___[%d_]+$")
    ids = { m1, m2 }
  else
    ids = { best.key }
  end
  for i, id in ipairs(ids) do
    local tr, pl, c = paths.parse_model_identifier(id)
    selected[i] = { configuration = c, trainer = tr, plans_identifier = pl }
  end
  local info = {
    folds = json.array(folds),
    dataset_name_or_id = dataset,
    considered_models = considered,
    ensembling_allowed = allow_ens and true or false,
    all_results = all,
    best_model_or_ensemble = {
      result_on_crossval_pre_pp = best.result,
      result_on_crossval_post_pp = R.score(post),
      postprocessing_file = paths.join(best.source, "postprocessing.pkl"),
      some_plans_file = paths.join(best.source, "plans.json"),
      selected_model_or_models = selected,
    },
  }
  json.write(paths.join(paths.results(), name, "inference_information.json"), info)
  local txt = M.instructions(info)
  fs.write_atomic(paths.join(paths.results(), name, "inference_instructions.txt"), txt)
  io.write(txt)
  return info, results
end

--- The predict command for one model (nnU-Net's generate_inference_command, with lunet's CLI).
function M.predict_command(dataset, cfg, plans, trainer, folds, output_folder, save_npz)
  local f = {}
  for i, x in ipairs(folds) do f[i] = tostring(x) end
  local cmd = string.format("lunet predict -d %s -i INPUT_FOLDER -o %s -f  %s -tr %s -c %s -p %s",
    tostring(dataset), output_folder, table.concat(f, " "), trainer, cfg, plans)
  if save_npz then cmd = cmd .. " --save_probabilities" end
  return cmd
end

--- The previous stage of a selected model's configuration (its results folder's plans.json), or nil.
local function previous_stage_of(dataset, m)
  -- inside the pcall: without nnUNet_results set (instructions written from a summary alone) there is no stage to find
  local ok, plans = pcall(function()
    return json.read(paths.join(paths.output_folder(dataset, m.trainer, m.plans_identifier, m.configuration),
      "plans.json"))
  end)
  if not ok or type(plans) ~= "table" then return nil end
  local okc, c = pcall(require("lunet.planner").configuration, plans, m.configuration)
  if not okc or type(c) ~= "table" or c.previous_stage == nil or c.previous_stage == json.null then return nil end
  return c.previous_stage
end

function M.instructions(info)
  local lines = {}
  local function add(s) lines[#lines + 1] = s end
  add("***Run inference like this:***\n")
  local sel = info.best_model_or_ensemble.selected_model_or_models
  local is_ens = #sel > 1
  if is_ens then
    add("An ensemble won! What a surprise! Run the following commands to run predictions with the ensemble members:\n")
  end
  local outs = {}
  for j, m in ipairs(sel) do
    local o = is_ens and ("OUTPUT_FOLDER_MODEL_" .. j) or "OUTPUT_FOLDER"
    outs[#outs + 1] = o
    -- a cascade stage runs its previous stage first (what nnunetv2's generate_inference_command means to print; its
    -- test of the plans never matches, so nnU-Net prints the cascade command alone, which its predictor refuses)
    local prev = previous_stage_of(info.dataset_name_or_id, m)
    local cmd = M.predict_command(info.dataset_name_or_id, m.configuration, m.plans_identifier, m.trainer, info.folds,
      o, is_ens)
    if prev then
      local po = "OUTPUT_FOLDER_PREV_STAGE" .. (is_ens and ("_MODEL_" .. j) or "")
      add(M.predict_command(info.dataset_name_or_id, prev, m.plans_identifier, m.trainer, info.folds, po, false))
      cmd = cmd:gsub(" %-%-save_probabilities$", "") .. " -prev_stage_predictions " .. po ..
        (is_ens and " --save_probabilities" or "")
    end
    add(cmd)
  end
  if is_ens then
    add("\nThe run ensembling with:\n")
    add(string.format("lunet ensemble -i %s -o OUTPUT_FOLDER -np 8", table.concat(outs, " ")))
  end
  add("\n***Once inference is completed, run postprocessing like this:***\n")
  add(string.format("lunet postprocess -i OUTPUT_FOLDER -o OUTPUT_FOLDER_PP -pp_pkl_file %s -np 8 -plans_json %s",
    info.best_model_or_ensemble.postprocessing_file, info.best_model_or_ensemble.some_plans_file))
  return table.concat(lines, "\n") .. "\n"
end

return setmetatable(M, { __call = function(_, ...) return M.run(...) end })
