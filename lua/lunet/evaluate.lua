--[==[ lunet.evaluate: segmentation metrics as nnU-Net's evaluate_predictions.py.

  local evaluate = require "lunet.evaluate"
  evaluate.case(ref_tensor, pred_tensor, labels_or_regions [, ignore_label [, threads]])
      -> { [key] = {Dice, IoU, FP, TP, FN, TN, n_pred, n_ref} }  (key = "1" or "(1, 2)")
  evaluate.folder(ref_dir, pred_dir, opts) -> summary (and writes summary.json)
      opts.dataset_json   path or table: labels, ignore label, regions and file_ending come from it
      opts.labels_or_regions, opts.ignore_label, opts.file_ending   (override / without dataset_json)
      opts.output_file    default pred_dir/summary.json; false: do not write
      opts.threads        voxel-parallel threads per case (default 2)
      opts.chill          true: do not require a prediction for every reference (default false)
      opts.read           function(path) -> Tensor; default lunet.io.image.read(path).data
  evaluate.region_key(r)   nnU-Net's str(label_or_region): 3 -> "3", {1,2} -> "(1, 2)", {3} -> "(3,)"
  evaluate.load_summary(path), evaluate.write_summary(path, summary)

Summary layout (summary.json, keys sorted, NaN written as NaN):
  { foreground_mean = {Dice=..}, mean = { [key] = {..} }, metric_per_case = { {reference_file, prediction_file,
    metrics = { [key] = {..} } }, ... } }
]==]
local core = require "lunet.core"
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"

local M = {}

M.metric_names = { "Dice", "IoU", "FP", "TP", "FN", "TN", "n_pred", "n_ref" }
local NAN = 0 / 0
M.NAN = NAN

function M.region_key(r)
  if type(r) ~= "table" then return tostring(math.tointeger(r) or r) end
  local s = {}
  for i, x in ipairs(r) do s[i] = tostring(math.tointeger(x) or x) end
  if #s == 1 then return "(" .. s[1] .. ",)" end
  return "(" .. table.concat(s, ", ") .. ")"
end

--- Inverse of region_key: "3" -> 3, "(1, 2)" -> {1, 2}.
function M.key_to_region(key)
  local n = math.tointeger(tonumber(key))
  if n then return n end
  local out = {}
  for x in key:gmatch("%-?%d+") do out[#out + 1] = math.tointeger(tonumber(x)) end
  return out
end

local function as_sets(labels_or_regions)
  local sets = {}
  for i, r in ipairs(labels_or_regions) do
    if type(r) == "table" then
      local s = {}
      for j, x in ipairs(r) do s[j] = math.tointeger(x) end
      sets[i] = s
    else
      sets[i] = math.tointeger(r)
    end
  end
  return sets
end

--- Metrics of one reference/prediction pair (host tensors of any integer or float dtype).
function M.case(ref, pred, labels_or_regions, ignore_label, threads)
  local counts = core.eval.confusion(ref, pred, as_sets(labels_or_regions),
    { ignore_label = ignore_label, threads = threads or 1 })
  local out = {}
  for i, r in ipairs(labels_or_regions) do
    local c = counts[i]
    local tp, fp, fn, tn = c.TP, c.FP, c.FN, c.TN
    local m = { TP = tp, FP = fp, FN = fn, TN = tn, n_pred = fp + tp, n_ref = fn + tp }
    if tp + fp + fn == 0 then
      m.Dice, m.IoU = NAN, NAN
    else
      m.Dice = 2 * tp / (2 * tp + fp + fn)
      m.IoU = tp / (tp + fp + fn)
    end
    out[M.region_key(r)] = m
  end
  return out
end

local function nanmean(values)
  local s, n = 0.0, 0
  for _, v in ipairs(values) do
    if v == v then s = s + v; n = n + 1 end
  end
  if n == 0 then return NAN end
  return s / n
end

local function ends_with(s, suffix) return suffix == "" or s:sub(-#suffix) == suffix end

--- Prediction files (sorted) with the ending.
function M.list_files(folder, ending)
  local out = {}
  for _, f in ipairs(paths.listdir(folder)) do
    if ends_with(f, ending) and paths.isfile(paths.join(folder, f)) then out[#out + 1] = f end
  end
  return out
end

--- Label settings from a dataset.json (path or table): labels_or_regions, ignore_label, file_ending.
function M.label_settings(dataset_json)
  local dj = type(dataset_json) == "string" and json.read(dataset_json) or dataset_json
  local info = require("lunet.labels").of_dataset_json(dj)
  local lr = info.has_regions and info.foreground_regions or info.foreground_labels
  return { labels_or_regions = lr, ignore_label = info.ignore_label, file_ending = dj.file_ending, info = info,
    dataset_json = dj }
end

function M.default_read(path)
  return require("lunet.io.image").read(path).data
end

--- Aggregates per-case results into nnU-Net's summary (mean with nanmean, foreground_mean).
function M.aggregate(per_case, labels_or_regions)
  local keys = {}
  for i, r in ipairs(labels_or_regions) do keys[i] = M.region_key(r) end
  local mean = {}
  for _, k in ipairs(keys) do
    mean[k] = {}
    for _, m in ipairs(M.metric_names) do
      local vals = {}
      for i, c in ipairs(per_case) do vals[i] = c.metrics[k][m] end
      mean[k][m] = nanmean(vals)
    end
  end
  local fg = {}
  for _, m in ipairs(M.metric_names) do
    local s, n = 0.0, 0
    for _, k in ipairs(keys) do
      if k ~= "0" then s = s + mean[k][m]; n = n + 1 end
    end
    fg[m] = n > 0 and s / n or NAN
  end
  return { metric_per_case = per_case, mean = mean, foreground_mean = fg }
end

function M.write_summary(path, summary)
  local per_case = json.array({})
  for i, c in ipairs(summary.metric_per_case) do
    per_case[i] = { reference_file = c.reference_file, prediction_file = c.prediction_file, metrics = c.metrics }
  end
  json.write(path, { metric_per_case = per_case, mean = summary.mean, foreground_mean = summary.foreground_mean })
end

function M.load_summary(path) return json.read(path) end

--- nnU-Net's compute_metrics_on_folder (with compute_metrics_on_folder2's defaults when a dataset.json is given).
function M.folder(ref_dir, pred_dir, opts)
  opts = opts or {}
  local lr, ignore, ending = opts.labels_or_regions, opts.ignore_label, opts.file_ending
  if opts.dataset_json then
    local s = M.label_settings(opts.dataset_json)
    lr = lr or s.labels_or_regions
    if ignore == nil then ignore = s.ignore_label end
    ending = ending or s.file_ending
  end
  if not lr or #lr == 0 then error("evaluate: no labels or regions (give dataset_json or labels_or_regions)", 2) end
  if not ending then error("evaluate: no file ending (give dataset_json or file_ending)", 2) end
  if not paths.isdir(ref_dir) then error(ref_dir .. ": reference folder not found", 2) end
  if not paths.isdir(pred_dir) then error(pred_dir .. ": prediction folder not found", 2) end
  local output_file = opts.output_file
  if output_file == nil then output_file = paths.join(pred_dir, "summary.json") end
  if output_file and not output_file:match("%.json$") then error("evaluate: output file should end with .json", 2) end
  local files_pred = M.list_files(pred_dir, ending)
  if not opts.chill then
    for _, f in ipairs(M.list_files(ref_dir, ending)) do
      if not paths.isfile(paths.join(pred_dir, f)) then
        error(string.format("evaluate: %s has no prediction in %s (Not all files in folder_ref exist in folder_pred)",
          paths.join(ref_dir, f), pred_dir), 2)
      end
    end
  end
  if #files_pred == 0 then error(pred_dir .. ": no predictions ending in " .. ending, 2) end
  local read = opts.read or M.default_read
  local per_case = {}
  for i, f in ipairs(files_pred) do
    local rf, pf = paths.join(ref_dir, f), paths.join(pred_dir, f)
    if not paths.isfile(rf) then error(rf .. ": reference segmentation missing for prediction " .. pf, 2) end
    local ok, res = pcall(function()
      return M.case(read(rf), read(pf), lr, ignore, opts.threads or 2)
    end)
    if not ok then error(tostring(res), 2) end
    per_case[i] = { reference_file = rf, prediction_file = pf, metrics = res }
  end
  local summary = M.aggregate(per_case, lr)
  if output_file then M.write_summary(output_file, summary) end
  return summary
end

return setmetatable(M, { __call = function(_, ...) return M.folder(...) end })
