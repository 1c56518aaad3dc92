--[==[ lunet.move_plans: nnU-Net's nnUNetv2_move_plans_between_datasets
(experiment_planning/plans_for_pretraining/move_plans_between_datasets.py).

  local move_plans = require "lunet.move_plans"
  move_plans.run(source, target, source_plans [, target_plans]) -> path of the written plans file

Reads nnUNet_preprocessed/<source>/<source_plans>.json and writes it as nnUNet_preprocessed/<target>/<target_plans>.json
(target_plans defaults to source_plans) with, as nnU-Net: dataset_name = the target's; each configuration's
data_identifier renamed to the target plans name (its source-plans prefix replaced, else prefixed) when the names
differ; image_reader_writer = the reader that opens the target's first training image; plans_name = target_plans.
Key order is kept. The usual use: train on the target with the source's plans (pretraining, or one network for
several datasets); preprocess the target with -plans_name target_plans afterwards.
]==]
local paths = require "lunet.util.paths"
local json = require "lunet.util.json"

local M = {}

function M.run(source, target, source_plans, target_plans)
  if not source_plans then error("move_plans: the source plans identifier is required", 2) end
  target_plans = target_plans or source_plans
  local src_name, dst_name = paths.dataset_name(source), paths.dataset_name(target)
  local src_dir = paths.join(paths.preprocessed(), src_name)
  if not paths.isdir(src_dir) then
    error(src_dir .. ": preprocessed folder of the source dataset missing; run plan-and-preprocess for it first", 2)
  end
  local src_file = paths.join(src_dir, source_plans .. ".json")
  if not paths.isfile(src_file) then
    error(src_file .. ": source plans missing; run the experiment planning for it first", 2)
  end
  local plans = json.read(src_file)
  plans.dataset_name = dst_name
  if target_plans ~= source_plans and type(plans.configurations) == "table" then
    for _, c in ipairs(json.keys(plans.configurations)) do
      local cfg = plans.configurations[c]
      local old = type(cfg) == "table" and cfg.data_identifier
      if type(old) == "string" then
        if old:sub(1, #source_plans) == source_plans then
          cfg.data_identifier = target_plans .. old:sub(#source_plans + 1)
        else
          cfg.data_identifier = target_plans .. "_" .. old
        end
      end
    end
  end
  -- the target's images may need another reader than the source's (e.g. PNG planned from NIfTI)
  local ok, ds = pcall(require("lunet.dataset").open, target)
  if not ok then error(tostring(ds), 2) end
  local first = ds.cases[1]
  if not first or not first.images or not first.images[1] then
    error(paths.join(paths.raw(), dst_name) .. ": target dataset has no training images", 2)
  end
  local okr, reader = pcall(require("lunet.io.image").reader_for, ds.file_ending, ds.json,
    first.images[1])
  if not okr then error(first.images[1] .. ": " .. tostring(reader), 2) end
  plans.image_reader_writer = reader.name
  plans.plans_name = target_plans
  local out_dir = paths.join(paths.preprocessed(), dst_name)
  paths.mkdirs(out_dir)
  local out = paths.join(out_dir, target_plans .. ".json")
  json.write(out, plans, { sort_keys = false })
  return out
end

return M
