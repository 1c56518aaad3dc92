--[[ lunet.dataset: nnU-Net v2 raw dataset folders (nnUNet_raw/DatasetXXX_Name) and their integrity check.

  local dataset = require "lunet.dataset"
  local ds = dataset.open(4)            -- or "4", "Dataset004_Hippocampus", "Hippocampus", or a folder path
  ds.name, ds.id, ds.path, ds.json      -- folder name, integer id (nil for a folder not named DatasetXXX_*), ...
  ds.file_ending                        -- ".nii.gz"
  ds.channels                           -- {"T2", "ADC"}: channel_names (or legacy modality) by channel index
  ds.num_channels, ds.num_training
  ds.labels                             -- label semantics as nnU-Net's LabelManager (lunet.labels.info):
                                        --   names (dict order), values (name -> int or {ints}), all_labels,
                                        --   has_regions, regions, regions_class_order, ignore_label,
                                        --   foreground_labels, foreground_regions, num_segmentation_heads
  ds.cases                              -- sorted: { {id="case_001", images={path_0000, ...}, label=path}, ... }
  ds.test_cases                         -- imagesTs: { {id=..., images={...}}, ... } (empty if no imagesTs)
  ds:case(id)                           -- one case by identifier
  local ok, problems, warnings = dataset.verify(ds_or_id_or_path, {threads=2})

Case discovery follows nnU-Net exactly: identifiers = names in imagesTr ending with file_ending, minus the ending and
5 more characters (the _XXXX channel suffix), unique and sorted; a case's images are the files matching
<id>_DDDD<ending> in name order; its label is labelsTr/<id><ending>. A dataset.json "dataset" dict
({id: {images=[...], label=...}}; relative paths resolved against the dataset folder, $VARS expanded) replaces
imagesTr/labelsTr.

verify makes every check of nnU-Net's verify_dataset_integrity
(nnunetv2/experiment_planning/verify_dataset_integrity.py) plus a few it misses (files in
imagesTr that do not follow the naming scheme, label files without a case, missing channel files, Inf values,
channels of one case that disagree, an empty dataset, dangling or looping symbolic links, NaN/Inf/zero/negative
spacing in an image header), and reports ALL problems, each naming the case, the file and what is wrong.
It only reads files. Problems are strings "<case>: <file>: <what>" (or "<file>: <what>" for dataset-level ones).
Warnings (nnU-Net warns too) are origin/direction mismatch between images and label and unrecognised files.
]]
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local labels = require "lunet.labels"

local M = {}

local Dataset = {}
Dataset.__index = Dataset

local REQUIRED_KEYS = { "labels", "channel_names", "numTraining", "file_ending" }

local function is_list(v) return type(v) == "table" and json.is_array(v) end

-- Label semantics live in lunet.labels; dataset.label_info stays as the name callers already use.
M.label_info = labels.info

-- ---------------------------------------------------------------------------------------------------------------
-- Case discovery

local function ends_with(s, suffix) return suffix == "" or s:sub(-#suffix) == suffix end

local function escape_pattern(s) return (s:gsub("[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")) end

local function expandvars(s)
  return (s:gsub("%$(%b{})", function(v) return os.getenv(v:sub(2, -2)) end)
           :gsub("%$([%a_][%w_]*)", function(v) return os.getenv(v) end))
end

local function resolve(base, p)
  p = expandvars(p)
  if p:sub(1, 1) == "/" then return p end
  return paths.join(base, p)
end

--- Cases of a folder of channel files (imagesTr / imagesTs), as nnU-Net finds them.
function M.cases_in_folder(folder, file_ending)
  local files = {}
  for _, f in ipairs(paths.listdir(folder)) do
    if ends_with(f, file_ending) and paths.isfile(paths.join(folder, f)) then files[#files + 1] = f end
  end
  local crop = #file_ending + 5
  local ids, seen = {}, {}
  for _, f in ipairs(files) do
    local id = f:sub(1, #f - crop)
    if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
  end
  table.sort(ids)
  local cases = {}
  local ending_pat = escape_pattern(file_ending)
  for _, id in ipairs(ids) do
    local pat = "^" .. escape_pattern(id) .. "_%d%d%d%d" .. ending_pat .. "$"
    local imgs = {}
    for _, f in ipairs(files) do
      if f:match(pat) then imgs[#imgs + 1] = paths.join(folder, f) end
    end
    cases[#cases + 1] = { id = id, images = imgs }
  end
  return cases, files
end

-- ---------------------------------------------------------------------------------------------------------------
-- Opening

local function locate(id_or_path)
  -- a path (has a slash, or is a folder here holding dataset.json) is used as is; anything else is an id or name
  if type(id_or_path) == "string" and (id_or_path:find("/", 1, true) or paths.isfile(paths.join(id_or_path,
      "dataset.json"))) then
    local p = id_or_path:gsub("/+$", "")
    return p == "" and "/" or p
  end
  local name = paths.dataset_name(id_or_path)
  return paths.join(paths.raw(), name)
end

--- Build the dataset object from a folder. lenient=true collects structural problems in ds.problems instead of
--- raising (used by verify); otherwise the first one raises.
local function load(folder, lenient)
  local ds = setmetatable({ path = folder, name = paths.basename(folder), problems = {}, warnings = {} }, Dataset)
  local function problem(msg)
    if not lenient then error(msg, 0) end
    ds.problems[#ds.problems + 1] = msg
  end
  local digits = ds.name:match("^Dataset(%d%d%d)")
  ds.id = digits and tonumber(digits) or nil
  local jpath = paths.join(folder, "dataset.json")
  ds.json_path = jpath
  if not paths.isdir(folder) then
    problem(folder .. ": dataset folder does not exist"); return ds, true
  end
  if not paths.isfile(jpath) then
    problem(jpath .. ": missing (every dataset folder needs a dataset.json)"); return ds, true
  end
  local ok, dj = pcall(json.read, jpath)
  if not ok then problem(tostring(dj)); return ds, true end
  if type(dj) ~= "table" or is_list(dj) then problem(jpath .. ": must hold a JSON object"); return ds, true end
  ds.json = dj

  local missing = {}
  for _, k in ipairs(REQUIRED_KEYS) do
    if dj[k] == nil and not (k == "channel_names" and dj.modality ~= nil) then missing[#missing + 1] = k end
  end
  if #missing > 0 then
    problem(jpath .. ": required key(s) missing: " .. table.concat(missing, ", ") ..
      " (required: labels, channel_names, numTraining, file_ending)")
  end

  -- channels
  local cn = dj.channel_names or dj.modality
  ds.channels = {}
  if type(cn) == "table" and not is_list(cn) then
    local idx = {}
    for k in pairs(cn) do
      local i = math.tointeger(tonumber(k))
      if i == nil then problem(jpath .. ": channel_names key '" .. tostring(k) .. "' is not a channel index")
      else idx[#idx + 1] = i end
    end
    table.sort(idx)
    for n, i in ipairs(idx) do
      if i ~= n - 1 then
        problem(jpath .. ": channel_names keys must be 0, 1, 2, ... (found " .. i .. " at position " .. n .. ")")
        break
      end
      ds.channels[n] = cn[tostring(i)] or cn[i]
    end
  elseif cn ~= nil then
    problem(jpath .. ": channel_names must be an object {\"0\": \"CT\", ...}")
  end
  ds.num_channels = #ds.channels

  -- file ending, numTraining
  ds.file_ending = dj.file_ending
  if ds.file_ending ~= nil and type(ds.file_ending) ~= "string" then
    problem(jpath .. ": file_ending must be a string like \".nii.gz\""); ds.file_ending = nil
  end
  ds.num_training = dj.numTraining
  if ds.num_training ~= nil and math.type(ds.num_training) ~= "integer" then
    problem(jpath .. ": numTraining must be an integer, got " .. json.encode(ds.num_training))
    ds.num_training = nil
  end
  ds.reader_name = dj.overwrite_image_reader_writer
  if ds.reader_name == "None" or ds.reader_name == json.null then ds.reader_name = nil end

  -- labels
  if dj.labels ~= nil then
    local lok, info = pcall(labels.info, dj.labels, dj.regions_class_order)
    if lok then ds.labels = info else problem(jpath .. ": labels: " .. tostring(info)) end
  end

  -- cases
  ds.cases, ds.test_cases = {}, {}
  if ds.file_ending then
    if dj.dataset ~= nil then
      if type(dj.dataset) ~= "table" or is_list(dj.dataset) then
        problem(jpath .. ": 'dataset' must be an object of identifier -> {images, label}")
      else
        local ids = {}
        for id in pairs(dj.dataset) do ids[#ids + 1] = id end
        table.sort(ids)
        for _, id in ipairs(ids) do
          local e = dj.dataset[id]
          if type(e) ~= "table" or not is_list(e.images) or type(e.label) ~= "string" then
            problem(jpath .. ": dataset entry '" .. id .. "' needs \"images\": [paths] and \"label\": path")
          else
            local imgs = {}
            for i, p in ipairs(e.images) do imgs[i] = resolve(folder, p) end
            ds.cases[#ds.cases + 1] = { id = id, images = imgs, label = resolve(folder, e.label) }
          end
        end
      end
    else
      local itr, ltr = paths.join(folder, "imagesTr"), paths.join(folder, "labelsTr")
      local have = true
      if not paths.isdir(itr) then problem(itr .. ": missing folder (needed without a 'dataset' entry)"); have = false end
      if not paths.isdir(ltr) then problem(ltr .. ": missing folder (needed without a 'dataset' entry)") end
      if have then
        local files
        ds.cases, files = M.cases_in_folder(itr, ds.file_ending)
        ds.images_tr_files = files
        for _, c in ipairs(ds.cases) do c.label = paths.join(ltr, c.id .. ds.file_ending) end
      end
    end
    local its = paths.join(folder, "imagesTs")
    if paths.isdir(its) then ds.test_cases = M.cases_in_folder(its, ds.file_ending) end
  end
  ds.case_index = {}
  for i, c in ipairs(ds.cases) do ds.case_index[c.id] = i end
  return ds, false
end

--- Open a raw dataset: id (4 or "4"), "DatasetXXX_Name", bare "Name", or a folder path. Raises on a dataset.json
--- that cannot be used (the message names the file and the problem).
function M.open(id_or_path)
  local folder = locate(id_or_path)
  local ok, ds = pcall(load, folder, false)
  if not ok then error(ds, 2) end
  return ds
end

function Dataset:case(id)
  local i = self.case_index[id]
  return i and self.cases[i] or nil
end

function Dataset:__tostring()
  return string.format("lunet.dataset(%s: %d cases, %d channels, ending %s)", self.name, #self.cases,
    self.num_channels or 0, tostring(self.file_ending))
end

-- ---------------------------------------------------------------------------------------------------------------
-- Voxel scans (values of a host tensor without building a Lua table of the whole volume)

local UNPACK = {
  f32 = "f", f64 = "d", u8 = "B", i8 = "b", i16 = "i2", u16 = "I2", i32 = "i4", u32 = "I4", i64 = "i8",
}
local SIZE = { f32 = 4, f64 = 8, u8 = 1, i8 = 1, i16 = 2, u16 = 2, i32 = 4, u32 = 4, i64 = 8 }

--- Scan a tensor: returns {nan=, inf=, values=set of distinct values (when want_values; capped), nvalues=,
--- capped=bool, nonint=bool}. Uses core helpers when present, else unpacks the raw bytes in blocks.
function M.scan(t, want_values, cap)
  cap = cap or 4096
  local dtype = t.dtype
  local res = { nan = 0, inf = 0, values = {}, nvalues = 0, capped = false, nonint = false }
  local is_float = dtype == "f32" or dtype == "f64" or dtype == "f16"
  local data, fmt, size = nil, UNPACK[dtype], SIZE[dtype]
  if not fmt then data = t:flat() end   -- f16 and anything unpack cannot read
  local values, nvalues = res.values, 0
  local function add(v)
    if v ~= v then res.nan = res.nan + 1; return end
    if is_float then
      if v == math.huge or v == -math.huge then res.inf = res.inf + 1; return end
      if v ~= math.floor(v) then res.nonint = true end
    end
    if want_values and not values[v] then
      if nvalues >= cap then res.capped = true
      else values[v] = true; nvalues = nvalues + 1 end
    end
  end
  if data then
    for _, v in ipairs(data) do add(v) end
  else
    local bytes = t:bytes()
    local n = #bytes // size
    local block = 256
    local bfmt = "<" .. fmt:rep(block)
    local pos, i = 1, 0
    if dtype == "u8" and want_values and not is_float then
      -- fast path: byte histogram
      local seen = {}
      for k = 1, #bytes, 4096 do
        for _, b in ipairs({ bytes:byte(k, math.min(k + 4095, #bytes)) }) do seen[b] = true end
      end
      for b in pairs(seen) do values[b] = true; nvalues = nvalues + 1 end
      i = n
    end
    while i + block <= n do
      local vals = { string.unpack(bfmt, bytes, pos) }
      for k = 1, block do add(vals[k]) end
      pos = vals[block + 1]
      i = i + block
    end
    while i < n do
      local v
      v, pos = string.unpack("<" .. fmt, bytes, pos)
      add(v)
      i = i + 1
    end
  end
  -- normalise values to integers where integral so they compare with label ints
  if want_values then
    local norm = {}
    for v in pairs(values) do
      local iv = math.tointeger(v)
      norm[iv ~= nil and iv or v] = true
    end
    res.values = norm
  end
  res.nvalues = nvalues
  return res
end

-- ---------------------------------------------------------------------------------------------------------------
-- Verify

--- The label values a label file of the dataset may hold: dataset.json's labels (regions: their union) and the
--- ignore label; nil when the dataset has no label semantics. The one list verify, the fingerprint, preprocessing
--- and training check label files against.
function M.allowed_labels(ds)
  if not ds.labels then return nil end
  local out = {}
  for _, v in ipairs(ds.labels.all_labels) do out[#out + 1] = v end
  if ds.labels.ignore_label then out[#out + 1] = ds.labels.ignore_label end
  return out
end

--- Refuses a case's image (host tensor read from path) holding NaN/Inf, or its label map holding a value that is not
--- one of allowed (nil: any integer) or not an integer; the error names the case, the file and the value.
function M.check_case_values(case_id, path, t, allowed, is_label)
  local values = require("lunet.core").values
  local what = case_id .. ": " .. path
  local ok, err
  if is_label then ok, err = pcall(values.check_labels, t, allowed, what)
  else ok, err = pcall(values.check_image, t, what) end
  if not ok then error(tostring(err), 0) end
end

local function allclose(a, b, rtol, atol)
  rtol, atol = rtol or 1e-5, atol or 1e-8
  if #a ~= #b then return false end
  for i = 1, #a do
    if not (math.abs(a[i] - b[i]) <= atol + rtol * math.abs(b[i])) then return false end
  end
  return true
end
M.allclose = allclose

local function fmt_list(t)
  local s = {}
  for i, v in ipairs(t) do s[i] = (math.type(v) == "float") and json.float_repr(v) or tostring(v) end
  return "[" .. table.concat(s, ", ") .. "]"
end

local function spatial_shape(img)
  local sh = img.data.shape
  return { sh[2], sh[3], sh[4] }
end

local function sorted_keys(set)
  local out = {}
  for k in pairs(set) do out[#out + 1] = k end
  table.sort(out, function(a, b)
    if type(a) == type(b) then return a < b end
    return type(a) == "number"
  end)
  return out
end

--- Default image reader: lunet.io.image.read (the C readers).
local function default_reader(ds)
  local ok, image = pcall(require, "lunet.io.image")
  if not ok then return nil, "lunet.io.image is not available: " .. tostring(image) end
  if image.reader_for and ds.file_ending then
    local rok, r = pcall(image.reader_for, ds.file_ending, ds.json)
    if not rok then return nil, tostring(r) end
    if type(r) == "table" and r.read then return function(p) return r.read(p) end end
    if type(r) == "function" then return r end
  end
  return image.read
end

--- When p is a symbolic link that does not lead to a file (dangling, or a loop of links), a description
--- "symbolic link to <target> <why>"; else nil.
local function broken_link(p)
  local lfs = require "lfs"
  local la = lfs.symlinkattributes(p)
  if not la or la.mode ~= "link" then return nil end
  local ok, err = lfs.attributes(p, "mode")
  if ok then return nil end
  local target = la.target or "?"
  local why = tostring(err or "")
  if why:find("levels of symbolic links", 1, true) or why:find("ELOOP", 1, true) then
    why = "loops (" .. why:gsub("^.-: ", "") .. ")"
  else
    why = "is dangling: the target does not exist"
  end
  return string.format("symbolic link to %s %s", target, why)
end
M.broken_link = broken_link

--- Spacing values a reader repaired or that make no geometry: NaN, Inf, zero or negative. Returns a description
--- or nil.
local function bad_spacing(sp)
  if type(sp) ~= "table" then return nil end
  local axes = { "x", "y", "z" }
  for i, v in ipairs(sp) do
    if v ~= v or v == math.huge or v == -math.huge or v <= 0 then
      local txt = v ~= v and "NaN" or (v == math.huge and "Inf" or (v == -math.huge and "-Inf" or tostring(v)))
      return string.format("spacing %s on axis %s in the image header (pixdim %s) is not a positive finite " ..
        "number", txt, axes[i] or tostring(i), fmt_list(sp))
    end
  end
  return nil
end

--- Verify a dataset (object, id/name or folder). opts: reader (function(path) -> image, for tests),
--- strict (origin/direction mismatch become problems), log (function(line) for progress).
--- Returns ok, problems, warnings (arrays of strings).
function M.verify(target, opts)
  opts = opts or {}
  local folder
  if type(target) == "table" and target.path then folder = target.path else folder = locate(target) end
  local ds, fatal = load(folder, true)
  local problems, warnings = ds.problems, ds.warnings
  local function problem(msg) problems[#problems + 1] = msg end
  local function warning(msg) warnings[#warnings + 1] = msg end
  if fatal or not ds.file_ending then return #problems == 0, problems, warnings end
  local ending = ds.file_ending
  local jpath = ds.json_path
  local dj = ds.json

  -- numTraining
  if ds.num_training and #ds.cases ~= ds.num_training then
    local ex = {}
    for i = 1, math.min(5, #ds.cases) do ex[i] = ds.cases[i].id end
    problem(string.format("%s: numTraining is %d but %d training cases were found (e.g. %s)", jpath,
      ds.num_training, #ds.cases, table.concat(ex, ", ")))
  end

  -- an empty dataset: nothing to train on
  if #ds.cases == 0 and (dj.dataset ~= nil or paths.isdir(paths.join(folder, "imagesTr"))) then
    local where = dj.dataset ~= nil and (jpath .. ": the 'dataset' entry") or
      (paths.join(folder, "imagesTr") .. ": no files ending in " .. ending)
    problem(string.format("%s: the dataset is empty: no training cases (%s)", folder, where))
  end

  -- symbolic links that lead nowhere (dangling, or looping): listing drops them, so name them here
  local broken = {}
  local function check_link(p, c)
    if broken[p] ~= nil then return broken[p] end
    local why = broken_link(p)
    broken[p] = why or false
    if why then problem(string.format("%s%s: %s", c and (c.id .. ": ") or "", p, why)) end
    return why
  end
  if dj.dataset ~= nil then
    for _, c in ipairs(ds.cases) do
      for _, p in ipairs(c.images) do check_link(p, c) end
      check_link(c.label, c)
    end
  else
    for _, sub in ipairs { "imagesTr", "labelsTr", "imagesTs" } do
      local d = paths.join(folder, sub)
      if paths.isdir(d) then
        for _, f in ipairs(paths.listdir(d)) do check_link(paths.join(d, f)) end
      end
    end
  end

  -- files that exist / follow the naming scheme
  local label_of = {}
  for _, c in ipairs(ds.cases) do label_of[c.label] = c end
  if dj.dataset ~= nil then
    for _, c in ipairs(ds.cases) do
      for _, p in ipairs(c.images) do
        if not paths.isfile(p) and not broken[p] then
          problem(c.id .. ": " .. p .. ": image file listed in dataset.json is missing")
        end
      end
      if not paths.isfile(c.label) and not broken[c.label] then
        problem(c.id .. ": " .. c.label .. ": label file listed in dataset.json is missing")
      end
    end
  else
    local itr, ltr = paths.join(folder, "imagesTr"), paths.join(folder, "labelsTr")
    local ending_pat = escape_pattern(ending)
    for _, f in ipairs(ds.images_tr_files or {}) do
      if not f:match("_%d%d%d%d" .. ending_pat .. "$") then
        problem(string.format("%s: file name does not end in _XXXX%s (4-digit channel index)",
          paths.join(itr, f), ending))
      end
    end
    if paths.isdir(itr) then
      for _, f in ipairs(paths.listdir(itr)) do
        if not ends_with(f, ending) and f:sub(1, 1) ~= "." then
          warning(string.format("%s: ignored, its ending is not the dataset's file_ending %s", paths.join(itr, f), ending))
        end
      end
    end
    for _, c in ipairs(ds.cases) do
      if not paths.isfile(c.label) and not broken[c.label] then problem(c.id .. ": " .. c.label .. ": label file missing") end
      -- channel files must be exactly _0000 .. _{n-1}
      local have = {}
      for _, p in ipairs(c.images) do have[tonumber(p:sub(-(#ending + 4), -(#ending + 1)))] = p end
      for ch = 0, ds.num_channels - 1 do
        if not have[ch] and not broken[paths.join(itr, string.format("%s_%04d%s", c.id, ch, ending))] then
          problem(string.format("%s: %s: channel %d (%s) image file missing", c.id,
            paths.join(itr, string.format("%s_%04d%s", c.id, ch, ending)), ch, tostring(ds.channels[ch + 1])))
        end
      end
      for ch, p in pairs(have) do
        if ch >= ds.num_channels then
          problem(string.format("%s: %s: unexpected channel %d (dataset.json declares %d channel(s))",
            c.id, p, ch, ds.num_channels))
        end
      end
    end
    if paths.isdir(ltr) then
      for _, f in ipairs(paths.listdir(ltr)) do
        local p = paths.join(ltr, f)
        if ends_with(f, ending) and not label_of[p] then
          problem(string.format("%s: label file has no images in imagesTr (no %s_0000%s)", p,
            f:sub(1, #f - #ending), ending))
        end
      end
    end
  end

  -- labels consecutive
  local expected, expected_set = M.allowed_labels(ds) or {}, {}
  if ds.labels then
    for i, v in ipairs(expected) do
      expected_set[v] = true
      if i > 1 and v - expected[i - 1] ~= 1 then
        problem(string.format("%s: labels must be consecutive integers (0, 1, 2, ...); %s breaks the sequence %s",
          jpath, tostring(v), fmt_list(expected)))
      end
    end
  end

  -- voxel checks
  local reader = opts.reader
  if not reader then
    local why
    reader, why = default_reader(ds)
    if not reader then
      problem(folder .. ": cannot read images: " .. tostring(why))
      return false, problems, warnings
    end
  end
  local function read(c, p)
    local ok, img = pcall(reader, p)
    if not ok then
      problem(string.format("%s: %s: cannot read: %s", c.id, p, tostring(img)))
      return nil
    end
    local bad = type(img) == "table" and (bad_spacing(img.header_spacing) or bad_spacing(img.spacing))
    if bad then problem(string.format("%s: %s: %s", c.id, p, bad)) end
    return img
  end
  local log = opts.log
  for n, c in ipairs(ds.cases) do
    if log then log(string.format("[%d/%d] %s", n, #ds.cases, c.id)) end
    local seg = paths.isfile(c.label) and read(c, c.label) or nil
    if seg then
      local sh = seg.data.shape
      if sh[1] ~= 1 then
        problem(string.format("%s: %s: label file has %d channels (a segmentation must be one 3-D/2-D map)",
          c.id, c.label, sh[1]))
      end
      local s = M.scan(seg.data, true)
      if s.nan > 0 then problem(string.format("%s: %s: segmentation contains %d NaN value(s)", c.id, c.label, s.nan)) end
      if s.inf > 0 then problem(string.format("%s: %s: segmentation contains %d infinite value(s)", c.id, c.label, s.inf)) end
      if ds.labels then
        local unexpected = {}
        for v in pairs(s.values) do if not expected_set[v] then unexpected[#unexpected + 1] = v end end
        if #unexpected > 0 then
          table.sort(unexpected)
          problem(string.format("%s: %s: unexpected label value(s) %s (expected %s%s)", c.id, c.label,
            fmt_list(unexpected), fmt_list(expected), s.capped and "; more than 4096 distinct values" or ""))
        end
      end
    end
    local imgs = {}
    local nch = 0
    for _, p in ipairs(c.images) do
      if paths.isfile(p) then
        local img = read(c, p)
        if img then
          imgs[#imgs + 1] = { path = p, img = img }
          nch = nch + img.data.shape[1]
          local s = M.scan(img.data, false)
          if s.nan > 0 then problem(string.format("%s: %s: image contains %d NaN value(s)", c.id, p, s.nan)) end
          if s.inf > 0 then problem(string.format("%s: %s: image contains %d infinite value(s)", c.id, p, s.inf)) end
        end
      end
    end
    if #imgs == #c.images and #imgs > 0 and nch ~= ds.num_channels then
      problem(string.format("%s: %s: %d image channel(s) but dataset.json declares %d", c.id,
        c.images[1], nch, ds.num_channels))
    end
    if #c.images == 0 and dj.dataset ~= nil then
      problem(string.format("%s: %s: no image files listed", c.id, jpath))
    end
    -- geometry: all channels against the first, label against the first image
    local ref = imgs[1]
    if ref then
      local rshape, rsp = spatial_shape(ref.img), ref.img.spacing
      local function compare(p, img, what)
        local sh = spatial_shape(img)
        if sh[1] ~= rshape[1] or sh[2] ~= rshape[2] or sh[3] ~= rshape[3] then
          problem(string.format("%s: %s: %s shape %s differs from image shape %s (%s)", c.id, p, what,
            fmt_list(sh), fmt_list(rshape), ref.path))
        end
        if not allclose(img.spacing, rsp) then
          problem(string.format("%s: %s: %s spacing %s differs from image spacing %s (%s)", c.id, p, what,
            fmt_list(img.spacing), fmt_list(rsp), ref.path))
        end
        local rs, ss = ref.img.sitk, img.sitk
        if rs and ss then
          local report = opts.strict and problem or warning
          if rs.origin and ss.origin and not allclose(ss.origin, rs.origin) then
            report(string.format("%s: %s: %s origin %s differs from image origin %s (%s)", c.id, p, what,
              fmt_list(ss.origin), fmt_list(rs.origin), ref.path))
          end
          if rs.direction and ss.direction and not allclose(ss.direction, rs.direction) then
            report(string.format("%s: %s: %s direction %s differs from image direction %s (%s)", c.id, p, what,
              fmt_list(ss.direction), fmt_list(rs.direction), ref.path))
          end
        end
      end
      for k = 2, #imgs do compare(imgs[k].path, imgs[k].img, "channel") end
      if seg then compare(c.label, seg, "label") end
    end
  end
  return #problems == 0, problems, warnings
end

-- ---------------------------------------------------------------------------------------------------------------
-- Medical Segmentation Decathlon conversion (nnUNetv2_convert_MSD_dataset)

--- Split a 4-D NIfTI into <base>_0000.. 3-D files in out_folder (a 3-D file is copied to <base>_0000 unchanged).
function M.split_4d(image, file, out_folder)
  local base = paths.basename(file):sub(1, -8)
  local img = image.read(file)
  local sh = img.data.shape
  local nch = sh[1]
  local is4d = nch > 1 or (img.ndim or img.file_ndim or 3) == 4
  if not is4d then
    fs.copy_atomic(file, paths.join(out_folder, base .. "_0000.nii.gz"))
    return 1
  end
  local core = require "lunet.core"
  local bytes = img.data:bytes()
  local per = #bytes // nch
  for c = 0, nch - 1 do
    local t = core.from_bytes(bytes:sub(c * per + 1, (c + 1) * per), { 1, sh[2], sh[3], sh[4] }, img.data.dtype)
    image.write(paths.join(out_folder, string.format("%s_%04d.nii.gz", base, c)), t, img)
  end
  return nch
end

local function msd_sources(folder)
  local out = {}
  for _, f in ipairs(paths.listdir(folder)) do
    local first = f:sub(1, 1)
    if ends_with(f, ".nii.gz") and first ~= "." and first ~= "_" and paths.isfile(paths.join(folder, f)) then
      out[#out + 1] = f
    end
  end
  return out
end

--- Convert an MSD task folder (TaskXX_Name) into nnUNet_raw/DatasetXXX_Name as nnunetv2's convert_msd_dataset:
--- 4-D images split into _0000.. channels, 3-D images copied as _0000, labels copied, dataset.json rewritten to v2
--- form (labels name -> int, modality -> channel_names, file_ending added, training/test dropped; key order kept).
--- opts: id (target id; default the task number), raw (target root; default nnUNet_raw), log (function(line)).
--- Returns the target folder.
function M.convert_msd(task_folder, opts)
  opts = opts or {}
  local image = opts.image or require("lunet.io.image")
  task_folder = task_folder:gsub("[/\\]+$", "")
  local src = {}
  for _, sub in ipairs({ "labelsTr", "imagesTs", "imagesTr" }) do
    src[sub] = paths.join(task_folder, sub)
    if not paths.isdir(src[sub]) then error(src[sub] .. ": " .. sub .. " subfolder missing in the MSD task folder", 2) end
  end
  local jpath = paths.join(task_folder, "dataset.json")
  if not paths.isfile(jpath) then error(jpath .. ": dataset.json missing in the MSD task folder", 2) end
  local base = paths.basename(task_folder)
  local task, name = base:match("^Task(%d+)_(.+)$")
  if not task then error(task_folder .. ": folder name must be TaskXX_Name (e.g. Task05_Prostate)", 2) end
  local target_id = opts.id and math.tointeger(tonumber(opts.id)) or tonumber(task)
  if not target_id then error("target id must be an integer, got " .. tostring(opts.id), 2) end
  -- the id must be free in all three roots
  local prefix = string.format("Dataset%03d", target_id)
  local taken = {}
  for _, var in ipairs({ "nnUNet_preprocessed", "nnUNet_raw", "nnUNet_results" }) do
    local root = var == "nnUNet_raw" and opts.raw or os.getenv(var)
    if root and root ~= "" and paths.isdir(root) then
      for _, f in ipairs(paths.listdir(root)) do
        if f:sub(1, #prefix) == prefix then taken[#taken + 1] = paths.join(root, f) end
      end
    end
  end
  if #taken > 0 then
    error(string.format("target dataset id %d is already taken (%s); choose another with --id", target_id,
      table.concat(taken, ", ")), 2)
  end
  local dj = json.read(jpath)
  if type(dj.labels) ~= "table" or (dj.modality == nil and dj.channel_names == nil) then
    error(jpath .. ": not an MSD dataset.json (needs 'labels' and 'modality')", 2)
  end
  local raw = opts.raw or paths.raw()
  local target = paths.join(raw, string.format("Dataset%03d_%s", target_id, name))
  local dst = {}
  for _, sub in ipairs({ "imagesTr", "imagesTs", "labelsTr" }) do
    dst[sub] = paths.join(target, sub)
    paths.mkdirs(dst[sub])
  end
  local log = opts.log or function() end
  for _, sub in ipairs({ "imagesTr", "imagesTs" }) do
    for _, f in ipairs(msd_sources(src[sub])) do
      log(sub .. "/" .. f)
      local ok, err = pcall(M.split_4d, image, paths.join(src[sub], f), dst[sub])
      if not ok then error(paths.join(src[sub], f) .. ": " .. tostring(err), 2) end
    end
  end
  for _, f in ipairs(msd_sources(src.labelsTr)) do
    fs.copy_atomic(paths.join(src.labelsTr, f), paths.join(dst.labelsTr, f))
  end
  -- dataset.json: same key order as nnU-Net's in-place edits of the loaded dict
  local out, keys = {}, {}
  for _, k in ipairs(json.keys(dj)) do
    if k ~= "modality" and k ~= "training" and k ~= "test" then
      keys[#keys + 1] = k
      out[k] = dj[k]
    end
  end
  local label_values, lkeys = {}, {}
  for _, k in ipairs(json.keys(dj.labels)) do
    local lname = dj.labels[k]
    local v = math.tointeger(tonumber(k))
    if not v then error(jpath .. ": label key '" .. k .. "' is not an integer", 2) end
    if label_values[lname] == nil then lkeys[#lkeys + 1] = lname end
    label_values[lname] = v
  end
  out.labels = json.object(label_values, lkeys)
  local function append(k, v)
    if out[k] == nil then keys[#keys + 1] = k end
    out[k] = v
  end
  append("file_ending", ".nii.gz")
  append("channel_names", dj.modality or dj.channel_names)
  json.write(paths.join(target, "dataset.json"), json.object(out, keys), { sort_keys = false })
  return target
end

return M
