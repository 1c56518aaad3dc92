--[[ lunet.preprocess_provenance: what a preprocessed case was made from, and whether it is still up to date.

Next to <case>.lcs and <case>.json, preprocessing writes <case>.provenance.json, atomically and LAST (after the
store and the properties), so a run killed at any point leaves a case without a record, which the next run redoes:

  {
    "lunet_case_format": 1,                 -- FORMAT below: bumped when the store, the properties or the numbers
                                            -- Lunet's preprocessing produces change
    "plans_name": "nnUNetPlans", "configuration": "3d_fullres",
    "config_digest": "xxh64:...",           -- XXH64 of `config` encoded as JSON with sorted keys
    "config": {...},                        -- exactly the fields preprocessing reads (M.fields), kept so that a
                                            -- mismatch can say which field changed
    "raw": [{"file": "imagesTr/x_0000.nii.gz", "size": N, "mtime_ns": T, "xxh64": "xxh64:..."}, ...],
                                            -- every input file of the case, images then label, relative to the
                                            -- raw dataset folder
    "payload": {"lcs": {"size": N, "xxh64": "..."}, "json": {...}}   -- the stored files as written
  }

  local prov = require "lunet.preprocess_provenance"
  prov.fields(plans, cfg_name, cfg, labels_info, store_opts) -> the `config` table above
  prov.raw_ids(ds, case)                                     -> the raw files' identities (take them before reading)
  prov.record(ds, case, plans_name, cfg_name, fields, base, raw) -> a record (hashes the payload; raw default now)
  prov.check(ds, case, plans_name, cfg_name, fields, base, opts) -> status, reason, refreshed_record
      status: "ok" (up to date), "new" (nothing stored yet) or "redo" (reason says why, one line)
      refreshed_record: set when the case is up to date but a raw file's time changed (same bytes): write it back
      so that the next check is quick again
  prov.write(base, record)   -- atomic
  prov.path(base)            -- <base>.provenance.json

Raw files: a file whose size and mtime_ns equal the record's is taken as unchanged without reading it (the rule
make, rsync and git's index use). Rewriting a file changes its mtime_ns (nanoseconds on ext4, xfs, btrfs, tmpfs), so
the shortcut only misses a change that keeps the size AND sets the old time back (cp -p / rsync -t of a different
file of the same size, or `touch -d`); opts.rehash (`lunet preprocess --rehash`) reads every raw file. When the
size or time differs, the content hash decides: same bytes (a `touch`, a copy) keep the case.
Payload: both stored files are always hashed and compared (XXH64 reads about 2.5 GB/s here, cheaper than the
decompression the store's own check would need): a flipped byte anywhere in the chunks or the properties redoes the
case.
]]
local core = require "lunet.core"
local json = require "lunet.util.json"
local fs = require "lunet.util.fs"
local paths = require "lunet.util.paths"

local M = {}

M.FORMAT = 1
M.SUFFIX = ".provenance.json"

function M.path(base) return base .. M.SUFFIX end

local function canon(v) return json.encode(v, { sort_keys = true }) end

local function opt(v)
  if v == nil then return json.null end
  return v
end

--- The configuration fields preprocessing reads, as one table (their digest decides whether a case is redone):
--- the plans' transpose and foreground intensity properties, the configuration's spacing, normalisation, mask
--- use, resampling functions and their kwargs, the preprocessor, the dataset's label layout (class locations and
--- the allowed labels depend on it) and the store's layout (chunk, zstd level, dtypes).
function M.fields(plans, cfg_name, cfg, labels, store_opts)
  local c = require("lunet.planner").configuration(plans, cfg_name) -- resolved (inherits_from)
  local fg = plans.foreground_intensity_properties_per_channel or {}
  local fgp = {}
  for i = 1, #(c.normalization_schemes or {}) do
    local p = fg[tostring(i - 1)] or fg[i - 1]
    fgp[tostring(i - 1)] = p and { mean = opt(p.mean), std = opt(p.std), percentile_00_5 = opt(p.percentile_00_5),
      percentile_99_5 = opt(p.percentile_99_5), min = opt(p.min), max = opt(p.max) } or json.null
  end
  local lab = json.null
  if labels then
    lab = { all_labels = json.array(labels.all_labels or {}), class_keys = json.array(cfg.class_keys or {}),
      ignore_label = opt(labels.ignore_label), has_regions = labels.has_regions and true or false }
  end
  return {
    data_identifier = opt(c.data_identifier),
    spacing = opt(c.spacing),
    transpose_forward = opt(plans.transpose_forward),
    normalization_schemes = opt(c.normalization_schemes),
    use_mask_for_norm = opt(c.use_mask_for_norm),
    resampling_fn_data = opt(c.resampling_fn_data),
    resampling_fn_data_kwargs = opt(c.resampling_fn_data_kwargs),
    resampling_fn_seg = opt(c.resampling_fn_seg),
    resampling_fn_seg_kwargs = opt(c.resampling_fn_seg_kwargs),
    preprocessor_name = opt(c.preprocessor_name),
    foreground_intensity_properties = fgp,
    labels = lab,
    store = { chunk = json.array(store_opts.chunk), level = store_opts.level, data_dtype = "float32",
      seg_dtype = "int8, or int16 when a label exceeds 127" },
  }
end

function M.digest(fields) return core.fileid.hash(canon(fields)) end

local function rel(ds, p)
  local root = ds.path and (ds.path:gsub("/+$", "") .. "/")
  if root and p:sub(1, #root) == root then return p:sub(#root + 1) end
  return p
end

local function inputs(case)
  local list = {}
  for _, p in ipairs(case.images) do list[#list + 1] = p end
  if case.label then list[#list + 1] = case.label end
  return list
end

local function file_id(path)
  local size, mt = core.fileid.stat(path)
  if not size then error(mt, 0) end
  return { size = size, mtime_ns = mt, xxh64 = core.fileid.hash_file(path) }
end

local function payload(base)
  local out = {}
  for _, ext in ipairs({ "lcs", "json" }) do
    local p = base .. "." .. ext
    local size = core.fileid.stat(p)
    out[ext] = size and { size = size, xxh64 = core.fileid.hash_file(p) } or json.null
  end
  return out
end

--- The identity of the case's raw files (size, mtime_ns, XXH64), taken BEFORE they are read for preprocessing: a
--- file changed while the case is being made then no longer matches its record, and the next run redoes the case.
function M.raw_ids(ds, case)
  local raw = {}
  for i, p in ipairs(inputs(case)) do
    local id = file_id(p)
    raw[i] = { file = rel(ds, p), size = id.size, mtime_ns = id.mtime_ns, xxh64 = id.xxh64 }
  end
  return json.array(raw)
end

--- raw: M.raw_ids taken before the case was read (default: now).
function M.record(ds, case, plans_name, cfg_name, fields, base, raw)
  return { lunet_case_format = M.FORMAT, plans_name = plans_name, configuration = cfg_name,
    config_digest = M.digest(fields), config = fields, raw = raw or M.raw_ids(ds, case), payload = payload(base) }
end

function M.write(base, rec) fs.write_atomic(M.path(base), json.encode(rec, { indent = 4, sort_keys = true })) end

local function read_record(base)
  local f = io.open(M.path(base), "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  local ok, rec = pcall(json.decode, s)
  if not ok or type(rec) ~= "table" then return false end
  return rec
end

-- The first configuration field that differs, as words for the message.
local function changed_field(old, new)
  if type(old) ~= "table" then return "the configuration" end
  local keys = {}
  for k in pairs(new) do keys[#keys + 1] = k end
  for k in pairs(old) do if new[k] == nil then keys[#keys + 1] = k end end
  table.sort(keys)
  for _, k in ipairs(keys) do
    if canon(opt(old[k])) ~= canon(opt(new[k])) then return "the configuration's " .. k end
  end
  return "the configuration"
end

function M.check(ds, case, plans_name, cfg_name, fields, base, opts)
  opts = opts or {}
  local rec = read_record(base)
  local have_lcs, have_json = paths.isfile(base .. ".lcs"), paths.isfile(base .. ".json")
  if rec == nil then
    if not have_lcs and not have_json then return "new" end
    return "redo", "it has no provenance record (an interrupted run, or made by an older Lunet)"
  end
  if rec == false then return "redo", "its provenance record is damaged" end
  if rec.lunet_case_format ~= M.FORMAT then
    return "redo", string.format("it was made in Lunet case format %s (now %d)", tostring(rec.lunet_case_format), M.FORMAT)
  end
  if rec.plans_name ~= plans_name then
    return "redo", string.format("the plans changed (%s, now %s)", tostring(rec.plans_name), plans_name)
  end
  if rec.config_digest ~= M.digest(fields) then
    return "redo", changed_field(rec.config, fields) .. " changed"
  end
  -- raw inputs: same list, each unchanged (size + mtime_ns, else content)
  local files = inputs(case)
  local raw = type(rec.raw) == "table" and rec.raw or {}
  if #raw ~= #files then return "redo", "its raw files changed (a channel or the label added or removed)" end
  local refreshed = false
  for i, p in ipairs(files) do
    local r = raw[i]
    if type(r) ~= "table" or r.file ~= rel(ds, p) then return "redo", "its raw files changed (" .. rel(ds, p) .. ")" end
    local size, mt = core.fileid.stat(p)
    if not size then return "redo", "raw file " .. rel(ds, p) .. " cannot be read" end
    if opts.rehash or size ~= r.size or mt ~= r.mtime_ns then
      if size ~= r.size or core.fileid.hash_file(p) ~= r.xxh64 then
        return "redo", "raw file " .. rel(ds, p) .. " changed"
      end
      if mt ~= r.mtime_ns then r.mtime_ns = mt; refreshed = true end
    end
  end
  -- payload: the stored files as written
  if not have_lcs or not have_json then return "redo", "its stored files are missing" end
  local now = payload(base)
  local want = type(rec.payload) == "table" and rec.payload or {}
  for _, ext in ipairs({ "lcs", "json" }) do
    local a, b = want[ext], now[ext]
    if type(a) ~= "table" or type(b) ~= "table" or a.size ~= b.size or a.xxh64 ~= b.xxh64 then
      return "redo", string.format("its stored .%s differs from what was written (damaged or edited)", ext)
    end
  end
  return "ok", nil, refreshed and rec or nil
end

return M
