--[==[ lunet.ensemble: nnU-Net's ensembling (ensembling/ensemble.py) of softmax/sigmoid probabilities.

  local ensemble = require "lunet.ensemble"
  ensemble.folders({dir1, dir2, ...}, out_dir, opts)   -- nnUNetv2_ensemble: every folder must hold the same
      <case>.npz set; per case the "probabilities" arrays are averaged in float32, turned into a segmentation
      (argmax, or the regions_class_order rule) and written as <case><file_ending>. opts.save_npz also writes the
      averaged <case>.npz (and copies the properties). opts.dataset_json / opts.plans_json default to the first
      folder's dataset.json / plans.json.
  ensemble.crossvalidations({model_dir1, model_dir2}, out_dir, folds, opts)   -- ensemble_crossvalidations
  ensemble.merge(npz_files, out_file, label_info, like [, npz_out])         -- one case

Geometry of the written segmentation (nnU-Net takes it from the first folder's <case>.pkl, which Lunet does not
unpickle): the first folder's <case>.json properties (sitk_stuff), else the first folder's <case><ending>
segmentation (nnU-Net's predict/validation writes it next to the npz).
]==]
local core = require "lunet.core"
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"

local M = {}

local function default_read(path) return require("lunet.io.image").read(path) end
local function default_write(path, t, like) return require("lunet.io.image").write(path, t, like) end

function M.average(files)
  local ts = {}
  for i, f in ipairs(files) do
    local z = core.npz.read(f)
    ts[i] = z.probabilities or error(f .. ": no 'probabilities' array in the npz", 2)
  end
  return core.eval.average(ts)
end

function M.probs_to_seg(probs, info)
  if info.has_regions then return core.eval.probs_to_seg(probs, info.regions_class_order) end
  return core.eval.probs_to_seg(probs)
end

--- Geometry for case `base` (path without .npz) from its properties json or its segmentation.
function M.like_for(base, ending, read)
  local pj, pk = base .. ".json", base .. ".pkl"
  local props
  if paths.isfile(pj) then props = json.read(pj)
  elseif paths.isfile(pk) then props = require("lunet.io.pickles").read_properties(pk) end -- nnunetv2's folders
  if props and props.sitk_stuff then return { sitk = props.sitk_stuff, spacing = props.spacing, properties = props } end
  local seg = base .. ending
  if paths.isfile(seg) then return (read or default_read)(seg) end
  error(base .. ".npz: no geometry: expected " .. pj .. " or " .. pk .. " (properties with sitk_stuff) or " .. seg, 2)
end

function M.merge(files, out_file, info, like, npz_out, write)
  local avg = M.average(files)
  local seg = M.probs_to_seg(avg, info)
  local w = write or default_write
  w(out_file, seg, like)
  if npz_out then core.npz.write(npz_out, { probabilities = avg }, { level = 1 }) end
  return seg
end

local function npz_cases(folder)
  local out = {}
  for _, f in ipairs(paths.listdir(folder)) do
    if f:match("%.npz$") then out[#out + 1] = f:sub(1, -5) end
  end
  return out
end

local function load_settings(opts, first)
  local dj = opts.dataset_json
  if type(dj) ~= "table" then dj = json.read(dj or paths.join(first, "dataset.json")) end
  local info = require("lunet.labels").of_dataset_json(dj)
  return dj, info
end

function M.folders(dirs, out_dir, opts)
  opts = opts or {}
  if #dirs < 1 then error("ensemble: no input folders", 2) end
  local dj, info = load_settings(opts, dirs[1])
  local sets = {}
  local union, order = {}, {}
  for i, d in ipairs(dirs) do
    if not paths.isdir(d) then error(d .. ": input folder not found", 2) end
    sets[i] = {}
    for _, c in ipairs(npz_cases(d)) do
      sets[i][c] = true
      if not union[c] then union[c] = true; order[#order + 1] = c end
    end
  end
  table.sort(order)
  for i, d in ipairs(dirs) do
    for _, c in ipairs(order) do
      if not sets[i][c] then
        error("ensemble: Not all folders contain the same files for ensembling: " .. d .. " lacks " .. c .. ".npz", 2)
      end
    end
  end
  paths.mkdirs(out_dir)
  json.write(paths.join(out_dir, "dataset.json"), dj, { sort_keys = false })
  local plans = opts.plans_json
  if type(plans) ~= "table" then
    local pf = plans or paths.join(dirs[1], "plans.json")
    if paths.isfile(pf) then plans = json.read(pf) else plans = nil end
  end
  if plans then json.write(paths.join(out_dir, "plans.json"), plans, { sort_keys = false }) end
  for _, c in ipairs(order) do
    local files = {}
    for i, d in ipairs(dirs) do files[i] = paths.join(d, c .. ".npz") end
    local like = M.like_for(paths.join(dirs[1], c), dj.file_ending, opts.read)
    M.merge(files, paths.join(out_dir, c .. dj.file_ending), info, like,
      opts.save_npz and paths.join(out_dir, c .. ".npz") or nil, opts.write)
    if opts.save_npz then
      for _, ext in ipairs { ".json", ".pkl" } do
        if paths.isfile(paths.join(dirs[1], c .. ext)) then
          fs.copy_atomic(paths.join(dirs[1], c .. ext), paths.join(out_dir, c .. ext))
        end
      end
    end
  end
  return order
end

--- nnU-Net's ensemble_crossvalidations: the models' fold_k/validation npz files, merged per case.
function M.crossvalidations(model_dirs, out_dir, folds, opts)
  opts = opts or {}
  local dj, info = load_settings(opts, model_dirs[1])
  local mapping, unique, order = {}, {}, {}
  for i, m in ipairs(model_dirs) do
    mapping[i] = {}
    for _, f in ipairs(folds) do
      local v = paths.join(m, "fold_" .. f, "validation")
      if not paths.isdir(v) then
        error(string.format("Expected model output directory does not exist. You must train all requested folds of " ..
          "the specified model.\nModel: %s\nFold: %s", m, tostring(f)), 2)
      end
      local cases = npz_cases(v)
      if #cases == 0 then
        error("No .npz files found in folder " .. v .. ". Rerun your validation with npz output (lunet train ... --val --npz).", 2)
      end
      for _, c in ipairs(cases) do
        if mapping[i][c] then error("Duplicate detected. Case " .. c .. ".npz is present in more than one fold of model " .. m, 2) end
        mapping[i][c] = paths.join(v, c)
        if not unique[c] then unique[c] = true; order[#order + 1] = c end
      end
    end
  end
  table.sort(order)
  for i, m in ipairs(model_dirs) do
    for _, c in ipairs(order) do
      if not mapping[i][c] then error("model " .. m .. " does not seem to contain all predictions. Missing: " .. c .. ".npz", 2) end
    end
  end
  paths.mkdirs(out_dir)
  for _, c in ipairs(order) do
    local files = {}
    for i = 1, #model_dirs do files[i] = mapping[i][c] .. ".npz" end
    local out = paths.join(out_dir, c .. dj.file_ending)
    if opts.overwrite ~= false or not paths.isfile(out) then
      M.merge(files, out, info, M.like_for(mapping[1][c], dj.file_ending, opts.read), nil, opts.write)
    end
  end
  fs.copy_atomic(paths.join(model_dirs[1], "plans.json"), paths.join(out_dir, "plans.json"))
  fs.copy_atomic(paths.join(model_dirs[1], "dataset.json"), paths.join(out_dir, "dataset.json"))
  return order
end

return setmetatable(M, { __call = function(_, ...) return M.folders(...) end })
