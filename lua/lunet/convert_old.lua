--[==[ lunet.convert_old: nnU-Net v1 task folders to v2 datasets, as nnUNetv2_convert_old_nnUNet_dataset
(dataset_conversion/convert_raw_dataset_from_old_nnunet_format.py).

  local convert_old = require "lunet.convert_old"
  convert_old.run(task_folder, "DatasetXXX_Name" [, opts]) -> target folder (nnUNet_raw/DatasetXXX_Name)
      opts.raw   target root (default $nnUNet_raw)

v1 files already carry the _0000 channel suffix, so imagesTr, labelsTr and (when present) imagesTs, labelsTs,
imagesVal, labelsVal are copied as they are. dataset.json loses tensorImageSize, numTest, training and test;
modality becomes channel_names; labels {"0": "background", ...} become {"background": 0, ...}; file_ending is
".nii.gz" (v1 read NIfTI only). Key order follows nnU-Net's in-place edits. The dataset is assembled under a
temporary name and renamed, so an interrupted conversion leaves no half dataset behind.
]==]
local paths = require "lunet.util.paths"
local json = require "lunet.util.json"
local fs = require "lunet.util.fs"

local M = {}

M.folders = { "imagesTr", "labelsTr", "imagesTs", "labelsTs", "imagesVal", "labelsVal" }

local function copy_tree(src, dst)
  paths.mkdirs(dst)
  for _, f in ipairs(paths.listdir(src)) do
    local s, d = paths.join(src, f), paths.join(dst, f)
    if paths.isdir(s) then copy_tree(s, d) else fs.copy_atomic(s, d) end
  end
end

--- The v2 dataset.json of a v1 one (table in, table out; json objects keep nnU-Net's key order).
function M.convert_dataset_json(dj, where)
  where = where or "dataset.json"
  if type(dj.labels) ~= "table" then error(where .. ": no 'labels' (not an nnU-Net v1 dataset.json)", 2) end
  if type(dj.modality) ~= "table" then error(where .. ": no 'modality' (not an nnU-Net v1 dataset.json)", 2) end
  local out, keys = {}, {}
  for _, k in ipairs(json.keys(dj)) do
    if k ~= "tensorImageSize" and k ~= "numTest" and k ~= "training" and k ~= "test" and k ~= "modality" then
      keys[#keys + 1] = k
      out[k] = dj[k]
    end
  end
  local labels, lkeys = {}, {}
  for _, k in ipairs(json.keys(dj.labels)) do
    local v = math.tointeger(tonumber(k))
    if not v then error(where .. ": label key '" .. tostring(k) .. "' is not an integer", 2) end
    local name = dj.labels[k]
    if labels[name] == nil then lkeys[#lkeys + 1] = name end
    labels[name] = v
  end
  out.labels = json.object(labels, lkeys)
  keys[#keys + 1] = "channel_names"
  out.channel_names = dj.modality
  if out.file_ending == nil then keys[#keys + 1] = "file_ending" end
  out.file_ending = ".nii.gz"
  return json.object(out, keys)
end

function M.run(task_folder, target_name, opts)
  opts = opts or {}
  task_folder = task_folder:gsub("/+$", "")
  if type(target_name) ~= "string" or not target_name:match("^Dataset%d%d%d_[^/]+$") then
    error("target name must follow the DatasetXXX_Name convention (a name, not a path), got " ..
      tostring(target_name), 2)
  end
  local jpath = paths.join(task_folder, "dataset.json")
  if not paths.isfile(jpath) then
    error(jpath .. ": missing; give the path of the v1 task folder (the one holding imagesTr, labelsTr)", 2)
  end
  for _, sub in ipairs({ "imagesTr", "labelsTr" }) do
    if not paths.isdir(paths.join(task_folder, sub)) then error(paths.join(task_folder, sub) .. ": missing", 2) end
  end
  local okj, dj = pcall(json.read, jpath)
  if not okj then error(dj, 2) end
  local okc, v2 = pcall(M.convert_dataset_json, dj, jpath)
  if not okc then error(v2, 2) end
  local raw = opts.raw or paths.raw()
  local target = paths.join(raw, target_name)
  if paths.exists(target) then
    error(target .. ": target dataset already exists; delete it by hand if you mean to replace it", 2)
  end
  local tmp = string.format("%s.partial%d", target, math.random(0, 1 << 30))
  local ok, err = pcall(function()
    for _, sub in ipairs(M.folders) do
      local s = paths.join(task_folder, sub)
      if paths.isdir(s) then copy_tree(s, paths.join(tmp, sub)) end
    end
    json.write(paths.join(tmp, "dataset.json"), v2, { sort_keys = false })
    local rok, rerr = os.rename(tmp, target)
    if not rok then error(target .. ": rename failed: " .. tostring(rerr), 0) end
  end)
  if not ok then
    fs.rmtree(tmp)
    error(err, 2)
  end
  return target
end

return M
