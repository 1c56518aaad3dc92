--[[ lunet.fingerprint: nnU-Net v2's dataset fingerprint (nnunetv2/experiment_planning/dataset_fingerprint/
fingerprint_extractor.py: DatasetFingerprintExtractor), computed in C over cases in parallel.

  local fp = lunet.fingerprint(ds, {threads = 2})   -- ds from lunet.dataset.open(id) (or an id / name / path)
  fp = lunet.fingerprint.extract(ds, {threads = 2, output = path_or_false, samples_per_case = N,
                                      progress = true, overwrite = true})

Writes nnUNet_preprocessed/<dataset>/dataset_fingerprint.json (nnU-Net's field names, sort_keys, indent 4) unless
output = false, and returns the fingerprint table (plus fp.cases: per-case bbox, shapes, foreground counts; not
written). With overwrite = false an existing file is read and returned instead (nnU-Net recomputes only with --clean).

Foreground intensity samples are nnU-Net's own: 1e8 // n_cases draws per case and channel, with replacement, from
a RandomState(1234) per case (numpy's MT19937 and bounded-integer draws, reproduced in C), and the statistics are
computed as numpy does on the concatenated float32 samples (pairwise sums, float32 mean/std, linear percentiles),
so the fingerprint, and the plans made from it, are bit-identical to nnunetv2's. Memory: 400 MB per channel for
the samples, as nnU-Net's.
]]
local json = require "lunet.util.json"

local M = {}

local function open_dataset(ds)
  if type(ds) == "table" and ds.cases then return ds end
  return require("lunet.dataset").open(ds)
end

--- nnU-Net's int(10e7 // n_cases): num_foreground_voxels_for_intensitystats is the float 10e7.
function M.samples_per_case(ncases)
  return 100000000 // ncases
end

--- Fingerprint of a list of cases {images = {...}, label = path}; returns the table written to JSON.
function M.compute(cases, nchannels, opts)
  opts = opts or {}
  local core = require "lunet.core"
  local list = {}
  for i, c in ipairs(cases) do list[i] = { images = c.images, label = c.label, id = c.id } end
  local progress = opts.progress
  if progress == nil then progress = true end
  local ok, res = pcall(core.fingerprint.dataset, list, nchannels, {
    threads = opts.threads or 2,
    samples_per_case = opts.samples_per_case or M.samples_per_case(#list),
    seed = opts.seed or 1234,
    progress = progress,
    labels = opts.labels,  -- with finite images, checked in the same pass over the voxels
  })
  if not ok then
    -- the message names the case and the file: the position of this call would only hide it
    local msg = tostring(res):gsub("^[^\n]-%.lua:%d+: ", "")
    if msg:find(" holds ", 1, true) then msg = msg .. "; `lunet verify` lists every such problem of the dataset" end
    error(msg, 0)
  end
  local spacings, shapes, rel = {}, {}, {}
  local natural2d = opts.natural_image_2d
  for i, c in ipairs(res.cases) do
    local sp = c.spacing
    if natural2d then  -- NaturalImage2DIO reports the int spacing (999, 1, 1)
      sp = {}
      for d = 1, 3 do sp[d] = math.tointeger(c.spacing[d]) or c.spacing[d] end
    end
    spacings[i] = json.array(sp)
    shapes[i] = json.array(c.shape_after_crop)
    rel[i] = c.relative_size
  end
  local props = {}
  for c, s in ipairs(res.channels) do
    props[tostring(c - 1)] = {
      mean = s.mean, median = s.median, std = s.std, min = s.min, max = s.max,
      percentile_99_5 = s.percentile_99_5, percentile_00_5 = s.percentile_00_5,
    }
  end
  table.sort(rel)
  local n = #rel
  local med = (n % 2 == 1) and rel[(n + 1) // 2] or (rel[n // 2] + rel[n // 2 + 1]) / 2
  local fp = {
    spacings = json.array(spacings),
    shapes_after_crop = json.array(shapes),
    foreground_intensity_properties_per_channel = props,
    median_relative_size_after_cropping = med + 0.0,
  }
  return fp, res.cases
end

--- Extract (and by default write) the fingerprint of a dataset.
function M.extract(ds, opts)
  opts = opts or {}
  ds = open_dataset(ds)
  local paths = require "lunet.util.paths"
  local out = opts.output
  if out == nil then
    local dir = paths.join(paths.preprocessed(), ds.name)
    paths.mkdirs(dir)
    out = paths.join(dir, "dataset_fingerprint.json")
  end
  if out and opts.overwrite == false and paths.isfile(out) then return json.read(out) end
  if #ds.cases == 0 then error(ds.path .. ": dataset has no training cases", 2) end
  local e = string.lower(ds.file_ending or "")
  local copts = setmetatable({ natural_image_2d = (e == ".png" or e == ".bmp"),
    labels = require("lunet.dataset").allowed_labels(ds) }, { __index = opts })
  local fp, cases = M.compute(ds.cases, ds.num_channels, copts)
  if out then json.write(out, fp) end
  fp.cases = cases
  return fp
end

return setmetatable(M, { __call = function(_, ...) return M.extract(...) end })
