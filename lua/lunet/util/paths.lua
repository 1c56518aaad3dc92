--[[ lunet.util.paths: nnU-Net v2's folder roots, dataset name/id resolution and folder naming.

  local paths = require "lunet.util.paths"
  paths.raw(), paths.preprocessed(), paths.results()   -- env nnUNet_raw / nnUNet_preprocessed / nnUNet_results;
                                                        -- error naming the variable when unset
  paths.set_roots{raw=, preprocessed=, results=}        -- set them from Lua (scripts, the REPL)
  paths.dataset_name(4)                 -- "Dataset004_Hippocampus" (searched in the three roots, as nnU-Net)
  paths.dataset_name("4"), paths.dataset_name("Dataset004_Hippocampus"), paths.dataset_name("Hippocampus")
  paths.dataset_id("Dataset004_Hippocampus")           -- 4  (int(name[7:10]))
  paths.model_identifier("nnUNetTrainer", "nnUNetPlans", "3d_fullres")   -- "nnUNetTrainer__nnUNetPlans__3d_fullres"
  paths.output_folder(4, trainer, plans, cfg, fold)    -- nnUNet_results/Dataset004_X/<id>[/fold_<f>]
  paths.folds_string({0,1,2,3,4})                      -- "0_1_2_3_4"
  paths.ensemble_name(folder1, folder2, folds)         -- "ensemble___<m1>___<m2>___0_1_2_3_4"
  paths.crossval_folder_name(folds)                    -- "crossval_results_folds_0_1_2_3_4"
  paths.join(a, b, ...), paths.isdir(p), paths.isfile(p), paths.listdir(p) (sorted names), paths.basename(p)
]]
local lfs = require "lfs"

local M = {}

local ENV = {
  raw = "nnUNet_raw", preprocessed = "nnUNet_preprocessed", results = "nnUNet_results",
}

-- Roots set from Lua (paths.set_roots) win over the environment: a script or REPL session cannot
-- change its own environment variables.
local overrides = {}

--- paths.set_roots{raw=, preprocessed=, results=}: use these folders in this process (nil keeps a root).
function M.set_roots(roots)
  for k in pairs(roots) do
    if not ENV[k] then error("paths.set_roots: unknown root '" .. tostring(k) .. "' (raw, preprocessed, results)", 2) end
  end
  for k in pairs(ENV) do if roots[k] ~= nil then overrides[k] = roots[k] end end
end

local function env_root(key)
  local var = ENV[key]
  local v = overrides[key] or os.getenv(var)
  if v == nil or v == "" then
    error(var .. " is not defined: set the environment variable " .. var ..
      " to the nnU-Net " .. key .. " folder", 3)
  end
  return v
end

function M.raw() return env_root("raw") end
function M.preprocessed() return env_root("preprocessed") end
function M.results() return env_root("results") end

function M.join(...)
  local parts = table.pack(...)
  local out = ""
  for i = 1, parts.n do
    local p = tostring(parts[i])
    if p:sub(1, 1) == "/" or out == "" then out = p
    elseif out:sub(-1) == "/" then out = out .. p
    else out = out .. "/" .. p end
  end
  return out
end

function M.basename(p) return (p:gsub("/+$", ""):match("([^/]*)$")) end
function M.dirname(p)
  local d = p:gsub("/+$", ""):match("^(.*)/[^/]*$")
  if d == nil then return "." end
  if d == "" then return "/" end
  return d
end

function M.isdir(p) return lfs.attributes(p, "mode") == "directory" end
function M.isfile(p)
  local m = lfs.attributes(p, "mode")
  return m ~= nil and m ~= "directory"
end
function M.exists(p) return lfs.attributes(p, "mode") ~= nil end

--- Sorted names in folder p (no "." / ".."); hidden files included. Errors if p is not a folder.
function M.listdir(p)
  local ok, iter, state = pcall(lfs.dir, p)
  if not ok then error(p .. ": cannot list folder: " .. tostring(iter), 2) end
  local out = {}
  for name in iter, state do
    if name ~= "." and name ~= ".." then out[#out + 1] = name end
  end
  table.sort(out)
  return out
end

--- mkdir -p
function M.mkdirs(p)
  if M.isdir(p) then return end
  local parent = M.dirname(p)
  if parent ~= p and parent ~= "." and parent ~= "/" then M.mkdirs(parent) end
  if not M.isdir(p) then
    local ok, err = lfs.mkdir(p)
    if not ok and not M.isdir(p) then error(p .. ": cannot create folder: " .. tostring(err), 2) end
  end
end

--- ID parsed from a DatasetXXX_Name folder name, as nnU-Net's int(name[7:10]).
function M.dataset_id(name)
  local base = M.basename(name)
  local digits = base:match("^Dataset(%d%d%d)")
  if not digits then error("'" .. tostring(name) .. "' is not a DatasetXXX_Name folder name", 2) end
  return tonumber(digits)
end

local function roots()
  -- nnU-Net searches preprocessed, raw, results; unset or missing roots are skipped.
  local out = {}
  for _, key in ipairs({ "preprocessed", "raw", "results" }) do
    local v = overrides[key] or os.getenv(ENV[key]) -- set_roots wins, as in env_root
    if v and v ~= "" and M.isdir(v) then out[#out + 1] = { key = key, var = ENV[key], dir = v } end
  end
  return out
end

local function roots_text()
  local lines = {}
  for _, key in ipairs({ "raw", "preprocessed", "results" }) do
    lines[#lines + 1] = ENV[key] .. "=" .. (overrides[key] or os.getenv(ENV[key]) or "None")
  end
  return table.concat(lines, ", ")
end

--- Folder names in the three roots accepted by match(name); unique and sorted.
local function candidates(match)
  local seen, out = {}, {}
  for _, r in ipairs(roots()) do
    for _, name in ipairs(M.listdir(r.dir)) do
      if not seen[name] and M.isdir(M.join(r.dir, name)) and match(name) then
        seen[name] = true; out[#out + 1] = name
      end
    end
  end
  table.sort(out)
  return out
end

--- Resolve a dataset id (integer or digit string), a DatasetXXX_Name, or a bare Name to the folder name.
function M.dataset_name(id_or_name)
  local t = type(id_or_name)
  if t == "string" and id_or_name:sub(1, 7) == "Dataset" then return id_or_name end
  local id
  if t == "number" then
    id = math.tointeger(id_or_name)
    if not id then error("dataset id must be an integer, got " .. tostring(id_or_name), 2) end
  elseif t == "string" then
    id = id_or_name:match("^%s*%d+%s*$") and math.tointeger(tonumber(id_or_name))
  else
    error("dataset id or name expected, got " .. t, 2)
  end
  if id then
    local prefix = string.format("Dataset%03d", id)
    local c = candidates(function(n) return n:sub(1, #prefix) == prefix end)
    if #c > 1 then
      error(string.format("more than one dataset name found for dataset id %d (%s); looked in %s",
        id, table.concat(c, ", "), roots_text()), 2)
    elseif #c == 0 then
      error(string.format("could not find a dataset with the id %d (no folder %s* in %s)", id, prefix,
        roots_text()), 2)
    end
    return c[1]
  end
  -- A bare name: DatasetXXX_<name>
  local c = candidates(function(n) return n:match("^Dataset%d%d%d_(.*)$") == id_or_name end)
  if #c > 1 then
    error(string.format("more than one dataset is named '%s' (%s); use the id", id_or_name,
      table.concat(c, ", ")), 2)
  elseif #c == 0 then
    error(string.format("could not find a dataset named '%s' (no folder DatasetXXX_%s in %s)", id_or_name,
      id_or_name, roots_text()), 2)
  end
  return c[1]
end

function M.raw_dataset(id_or_name) return M.join(M.raw(), M.dataset_name(id_or_name)) end
function M.preprocessed_dataset(id_or_name) return M.join(M.preprocessed(), M.dataset_name(id_or_name)) end
function M.results_dataset(id_or_name) return M.join(M.results(), M.dataset_name(id_or_name)) end

--- Where Lunet keeps a configuration's preprocessed cases: <dataset's preprocessed folder>/<data_identifier>/lunet/.
--- A subfolder, because nnunetv2's data loader refuses a configuration folder holding any file ending besides its
--- own (infer_dataset_class), and both tools may preprocess into the same nnUNet_preprocessed.
M.CASE_STORE_SUBDIR = "lunet"
function M.case_store_dir(preprocessed_dataset_dir, data_identifier)
  return M.join(M.join(preprocessed_dataset_dir, data_identifier), M.CASE_STORE_SUBDIR)
end

--- "<trainer>__<plans>__<configuration>"
function M.model_identifier(trainer, plans, configuration)
  return string.format("%s__%s__%s", trainer or "nnUNetTrainer", plans or "nnUNetPlans",
    configuration or "3d_fullres")
end

--- Inverse of model_identifier (accepts a path): trainer, plans, configuration.
function M.parse_model_identifier(s)
  local base = M.basename(s)
  local parts = {}
  local i = 1
  while true do
    local a, b = base:find("__", i, true)
    if not a then parts[#parts + 1] = base:sub(i); break end
    parts[#parts + 1] = base:sub(i, a - 1)
    i = b + 1
  end
  if #parts ~= 3 then error("'" .. s .. "' is not a <trainer>__<plans>__<configuration> name", 2) end
  return parts[1], parts[2], parts[3]
end

--- nnUNet_results/DatasetXXX_Name/<trainer>__<plans>__<cfg>[/fold_<fold>]
function M.output_folder(id_or_name, trainer, plans, configuration, fold)
  local p = M.join(M.results(), M.dataset_name(id_or_name), M.model_identifier(trainer, plans, configuration))
  if fold ~= nil then p = M.join(p, "fold_" .. tostring(fold)) end
  return p
end

function M.folds_string(folds)
  local s = {}
  for i, f in ipairs(folds) do s[i] = tostring(f) end
  return table.concat(s, "_")
end

function M.ensemble_name(model1_folder, model2_folder, folds)
  return "ensemble___" .. M.basename(model1_folder) .. "___" .. M.basename(model2_folder) .. "___" ..
    M.folds_string(folds)
end

function M.crossval_folder_name(folds)
  return "crossval_results_folds_" .. M.folds_string(folds or { 0, 1, 2, 3, 4 })
end

return M
