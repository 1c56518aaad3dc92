--[[ lunet.preprocess: nnU-Net v2's DefaultPreprocessor
(nnunetv2/preprocessing/preprocessors/default_preprocessor.py) with the number crunching in C.

  local preprocess = require "lunet.preprocess"
  preprocess.run(ds, plans, "3d_fullres", {threads = 2, progress = true})   -- also lunet.preprocess(ds, plans, cfg)
      ds:     lunet.dataset object, or a dataset id/name (opened with lunet.dataset.open)
      plans:  plans table (planner.read / planner.plan) or a path of a plans .json
      cfg:    configuration name or a list of names
      opts:   threads (default 2), progress (default: stderr is a terminal), out_root (default
              $nnUNet_preprocessed/<dataset name>), chunk ({z,y,x}, default 64^3; 2d configurations {1,256,256}),
              level (zstd level, default 1), cases (list of case ids to do; default all)
    writes <out_root>/<data_identifier>/lunet/<case>.lcs (chunked case store, docs/formats.md) and <case>.json
    (properties: sitk_stuff, spacing, shape_before_cropping, bbox_used_for_cropping,
    shape_after_cropping_and_before_resampling, class_locations {key: [[0,z,y,x], ...]}).
    and, last, <case>.provenance.json (lunet.preprocess_provenance: plans, configuration fields, raw files, payload
    hashes). A case is skipped only when its record matches all of these now (so a kill, a re-plan, a changed raw
    file or a damaged store redoes it); opts.rehash: hash every raw file even when its size and time match;
    opts.clean: empty the configuration folders and gt_segmentations first (nnU-Net's preprocessor always does);
    opts.log(line): one line per case redone, with the reason. gt_segmentations/ gets copies of the training
    labels, refreshed when a raw label changed. Returns a summary per configuration: done (cases preprocessed),
    skipped (up to date), redone (of done, cases that had stale output), reasons ({id, reason} list), foreign
    (cases in nnU-Net's own .pkl/.b2nd format found in the folder, left alone), gt_refreshed, folder.
  preprocess.run_case(images, seg, props, plans, cfg, opts) -> data, seg, properties   (in memory: inference)
      images: list of host tensors (C_i, Z, Y, X) or of file paths; seg: tensor, path or nil;
      props: reader properties ({spacing = {z,y,x}, sitk = {...}}; taken from the first file when paths are given)
      opts.labels: label info (lunet.labels.info) for class locations; opts.threads.
  preprocess.config(plans, cfg, labels) -> the table lunet.core.preprocess.run_case takes
  preprocess.class_key(c) -> the properties key of a class ("1", or "(1, 2)" for a region / tuple)
]]
local core = require "lunet.core"
local json = require "lunet.util.json"
local term = require "lunet.util.term"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local prov = require "lunet.preprocess_provenance"

local M = {}
local refresh_gt, clean_folder, foreign_cases

local function planner() return require "lunet.planner" end
local function dataset() return require "lunet.dataset" end

local function load_plans(plans)
  if type(plans) == "string" then return planner().read(plans) end
  if type(plans) ~= "table" then error("preprocess: plans must be a table or a path", 3) end
  return plans
end

--- The properties key of a class: integers as "1", regions / tuples as "(1, 2)" (Python's tuple repr without the
--- trailing comma of 1-tuples).
function M.class_key(c)
  if type(c) == "table" then
    local t = {}
    for i, v in ipairs(c) do t[i] = tostring(math.tointeger(v) or v) end
    return "(" .. table.concat(t, ", ") .. ")"
  end
  return tostring(math.tointeger(c) or c)
end

--- Classes sampled for oversampling, as nnU-Net: foreground regions or labels, plus the "annotated" tuple
--- (-1, all labels...) when there is an ignore label.
function M.classes(labels)
  if not labels then return {}, {} end
  local list, keys = {}, {}
  local src = labels.has_regions and labels.foreground_regions or labels.foreground_labels or {}
  for _, c in ipairs(src) do
    list[#list + 1] = c
    keys[#keys + 1] = M.class_key(c)
  end
  if labels.ignore_label ~= nil then
    local t = { -1 }
    for _, l in ipairs(labels.all_labels) do t[#t + 1] = l end
    list[#list + 1] = t
    keys[#keys + 1] = M.class_key(t)
  end
  return list, keys
end

local function resampling_opts(kw)
  kw = kw or {}
  local f = kw.force_separate_z
  if f == json.null then f = nil end
  return { order = kw.order, order_z = kw.order_z, force_separate_z = f,
    separate_z_anisotropy_threshold = kw.separate_z_anisotropy_threshold }
end

function M.config(plans, cfg_name, labels)
  plans = load_plans(plans)
  local c = planner().configuration(plans, cfg_name)
  for _, k in ipairs({ "resampling_fn_data", "resampling_fn_seg" }) do
    local fn = c[k]
    if fn and fn ~= "resample_data_or_seg_to_shape" and fn ~= "resample_data_or_seg_to_spacing" then
      error(string.format("preprocess: configuration '%s' uses %s = '%s'; Lunet implements "
        .. "resample_data_or_seg_to_shape", cfg_name, k, fn), 3)
    end
  end
  if c.preprocessor_name and c.preprocessor_name ~= "DefaultPreprocessor" then
    error(string.format("preprocess: configuration '%s' asks for preprocessor '%s'; Lunet implements "
      .. "DefaultPreprocessor", cfg_name, c.preprocessor_name), 3)
  end
  local fg = plans.foreground_intensity_properties_per_channel or {}
  local props = {}
  for i = 1, #c.normalization_schemes do
    local p = fg[tostring(i - 1)] or fg[i - 1]
    props[i] = p and { mean = p.mean, std = p.std, percentile_00_5 = p.percentile_00_5,
      percentile_99_5 = p.percentile_99_5 } or false
  end
  local classes, keys = M.classes(labels)
  local use_mask = {}
  for i = 1, #c.normalization_schemes do use_mask[i] = c.use_mask_for_norm and c.use_mask_for_norm[i] == true end
  return {
    transpose = plans.transpose_forward or { 0, 1, 2 },
    target_spacing = c.spacing,
    schemes = c.normalization_schemes,
    use_mask = use_mask,
    props = props,
    data_opts = resampling_opts(c.resampling_fn_data_kwargs),
    seg_opts = resampling_opts(c.resampling_fn_seg_kwargs),
    classes = classes,
    class_keys = keys,
    seed = 1234,
    data_identifier = c.data_identifier,
    patch_size = c.patch_size,
    is_2d = #c.spacing == 2,
  }
end

local function read_images(images)
  local image = require "lunet.io.image"
  local ts, props = {}, nil
  for i, p in ipairs(images) do
    if type(p) == "string" then
      local r = image.read(p)
      ts[i] = r.data
      if not props then props = { spacing = r.spacing, sitk_stuff = r.sitk } end
    else
      ts[i] = p
    end
  end
  return ts, props
end

-- Properties as nnU-Net's .pkl holds them (JSON-friendly: class locations as (N, 4) i32 tensors by key).
local function properties(rprops, info, keys)
  local p = {}
  if rprops.sitk_stuff or rprops.sitk then p.sitk_stuff = rprops.sitk_stuff or rprops.sitk end
  p.spacing = rprops.spacing
  p.shape_before_cropping = info.shape_before_cropping
  local bb = {}
  for a = 1, 3 do bb[a] = { info.bbox_used_for_cropping[a][1], info.bbox_used_for_cropping[a][2] } end
  p.bbox_used_for_cropping = bb
  p.shape_after_cropping_and_before_resampling = info.shape_after_cropping_and_before_resampling
  if info.class_locations then
    -- in class order (nnU-Net's dict order: foreground labels/regions, then the annotated tuple)
    p.class_locations = json.object({}, keys)
    for i, k in ipairs(keys) do p.class_locations[k] = info.class_locations[i] end
  end
  return p
end

function M.run_case(images, seg, props, plans, cfg_name, opts)
  opts = opts or {}
  local cfg = type(cfg_name) == "table" and cfg_name or M.config(plans, cfg_name, opts.labels)
  local ts, rprops = read_images(images)
  props = props or rprops
  if not props or not props.spacing then error("preprocess.run_case: no spacing (pass props = {spacing = ...})", 2) end
  if type(seg) == "string" then seg = require("lunet.io.image").read(seg).data end
  local data, s, info = core.preprocess.run_case(ts, seg, props.spacing, cfg, opts.threads or 1)
  return data, s, properties(props, info, cfg.class_keys)
end

-- ------------------------------------------------------------------------------------------------ files

local function num(v)
  if math.type(v) == "integer" then return tostring(v) end
  return json.encode(v)
end

--- Properties JSON: indent 4 like nnU-Net's JSON files, one line per class-location voxel list row group.
function M.encode_properties(p)
  local out = { "{" }
  local keys = {}
  for k in pairs(p) do keys[#keys + 1] = k end
  table.sort(keys)
  for i, k in ipairs(keys) do
    local v = p[k]
    local s
    if k == "class_locations" then
      local ck = json.keys(v)
      local parts = {}
      for j, kk in ipairs(ck) do
        local t = v[kk]
        local flat = t:flat()
        local rows = {}
        for r = 0, t.shape[1] - 1 do
          rows[r + 1] = "[" .. flat[r * 4 + 1] .. ", " .. flat[r * 4 + 2] .. ", " .. flat[r * 4 + 3] .. ", "
            .. flat[r * 4 + 4] .. "]"
        end
        parts[j] = "        " .. json.encode(kk) .. ": [" .. table.concat(rows, ", ") .. "]"
      end
      s = #parts > 0 and ("{\n" .. table.concat(parts, ",\n") .. "\n    }") or "{}"
    else
      s = json.encode(v, { indent = 4, sort_keys = true }):gsub("\n", "\n    ")
    end
    out[#out + 1] = "    " .. json.encode(k) .. ": " .. s .. (i < #keys and "," or "")
  end
  out[#out + 1] = "}"
  return table.concat(out, "\n")
end
M._num = num

--- gt_segmentations/<label file>: a copy of every training label, as nnU-Net writes them (evaluation reads them).
--- A copy carries its source's modification time, so a copy whose size and time equal the raw label's is current
--- without reading either; otherwise the bytes decide, and a changed label is copied again. Returns the number
--- of copies written.
refresh_gt = function(ds, gt)
  paths.mkdirs(gt)
  local fid, n = core.fileid, 0
  for _, c in ipairs(ds.cases) do
    if c.label then
      local dst = paths.join(gt, paths.basename(c.label))
      local ss, sm = fid.stat(c.label)
      local ds_, dm = fid.stat(dst)
      if not (ss and ds_ == ss and dm == sm) then
        if ds_ ~= ss or fid.hash_file(dst) ~= fid.hash_file(c.label) then
          fs.copy_atomic(c.label, dst)
          n = n + 1
        end
        fid.copy_mtime(c.label, dst)
      end
    end
  end
  return n
end

-- Temporary files of writers killed mid-write: removed by the next run, which holds the folder's lock.
local function remove_temps(dir) return require("lunet.util.fs").remove_temp_files(dir) end

--- --clean: everything in a configuration folder goes (nnU-Net's preprocessor removes the folder), except the
--- lock this run holds on it.
clean_folder = function(dir)
  for _, name in ipairs(paths.listdir(dir)) do
    if name ~= ".lunet.lock" then fs.rmtree(paths.join(dir, name)) end
  end
end

--- Cases stored in nnU-Net's own formats (<case>.pkl with .b2nd / .npz / .npy) in a configuration folder: Lunet
--- neither reads nor removes them (nnU-Net keeps working on the folder; Lunet's cases are in its lunet/
--- subfolder). --clean removes them.
foreign_cases = function(dir)
  local n = 0
  for _, name in ipairs(paths.listdir(dir)) do
    if name:match("%.pkl$") then n = n + 1 end
  end
  return n
end


--- Lunet's cases of an earlier layout (<case>.lcs, .json, .provenance.json directly in the configuration folder)
--- move into the case store folder, where their records are checked as usual. Returns how many moved.
local function move_old_layout(parent, dir)
  local n = 0
  for _, name in ipairs(paths.listdir(parent)) do
    local id = name:match("^(.*)%.lcs$")
    if id then
      for _, ext in ipairs { ".lcs", ".json", ".provenance.json" } do
        local src = paths.join(parent, id .. ext)
        if paths.isfile(src) then assert(os.rename(src, paths.join(dir, id .. ext))) end
      end
      n = n + 1
    end
  end
  return n
end

local function progress_bar(label, total, enabled)
  local t0 = os.time()
  local clock0 = os.clock()
  local function draw(done)
    if not enabled then return end
    local el = os.time() - t0
    local eta = done > 0 and el / done * (total - done) or 0
    local w = 30
    local fill = total > 0 and math.floor(w * done / total) or w
    io.stderr:write(string.format("\r%s [%s%s] %d/%d  elapsed %s  ETA %s ", label, string.rep("#", fill),
      string.rep(".", w - fill), done, total, term.fmt_duration(el), done > 0 and term.fmt_duration(eta) or "--:--"))
    if done == total then io.stderr:write("\n") end
    io.stderr:flush()
  end
  return draw, clock0
end


--- Locks of the configurations' folders (created), as one to-be-closed value; on failure the ones taken are released.
local function lock_all(out_root, plans, cfgs, labels)
  local held, seen = {}, {}
  local function release() for _, h in ipairs(held) do h:release() end end
  for _, cfg_name in ipairs(cfgs) do
    local dir = paths.case_store_dir(out_root, M.config(plans, cfg_name, labels).data_identifier)
    if not seen[dir] then -- configurations may share a folder (3d_cascade_fullres and 3d_fullres)
      seen[dir] = true
      paths.mkdirs(dir)
      local ok, h = pcall(core.lock.acquire, dir, "preprocessed configuration folder")
      if not ok then release(); error(h, 0) end
      held[#held + 1] = h
    end
  end
  return setmetatable(held, { __close = release })
end

function M.run(ds, plans, cfgs, opts)
  opts = opts or {}
  if type(ds) ~= "table" then ds = dataset().open(ds) end
  plans = load_plans(plans)
  if type(cfgs) == "string" then cfgs = { cfgs } end
  local threads = opts.threads or 2
  local progress = opts.progress
  if progress == nil then progress = term.stderr_is_tty() end
  local out_root = opts.out_root or paths.preprocessed_dataset(ds.name)
  local summary = {}
  local only
  if opts.cases then
    only = {}
    for _, id in ipairs(opts.cases) do only[id] = true end
  end
  local allowed = dataset().allowed_labels(ds)
  -- one run per configuration folder, every folder of this run locked before any work so that a second run fails
  -- at once, not halfway; released on return and on error
  local locks <close> = lock_all(out_root, plans, cfgs, ds.labels)
  local plans_name = opts.plans_name or plans.plans_name or "nnUNetPlans"
  local gt_refreshed
  do -- gt_segmentations is shared by the runs of every configuration: locked while it is refreshed (a moment)
    local gt = paths.join(out_root, "gt_segmentations")
    if opts.clean then fs.rmtree(gt) end
    paths.mkdirs(gt)
    local lk
    for _ = 1, 300 do
      local ok, h = pcall(core.lock.acquire, gt, "gt_segmentations folder")
      if ok then lk = h break end
      os.execute("sleep 0.1")
    end
    if not lk then error("preprocess: gt_segmentations stays locked by another run: " .. gt, 0) end
    local ok, res = pcall(function()
      remove_temps(gt)
      return refresh_gt(ds, gt)
    end)
    lk:release()
    if not ok then error(res, 0) end
    gt_refreshed = res
  end
  local cleaned = {}
  for _, cfg_name in ipairs(cfgs) do
    local cfg = M.config(plans, cfg_name, ds.labels)
    local parent = paths.join(out_root, cfg.data_identifier)
    local dir = paths.case_store_dir(out_root, cfg.data_identifier)
    local chunk = opts.chunk or (cfg.is_2d and { 1, 256, 256 } or { 64, 64, 64 })
    if opts.clean and not cleaned[dir] then
      -- nnU-Net's --clean removes the whole configuration folder: its cases too, not this run's lock
      for _, name in ipairs(paths.listdir(parent)) do
        if name ~= paths.CASE_STORE_SUBDIR then fs.rmtree(paths.join(parent, name)) end
      end
      clean_folder(dir)
      cleaned[dir] = true
    end
    move_old_layout(parent, dir)
    remove_temps(dir)
    local fields = prov.fields(plans, cfg_name, cfg, ds.labels, { chunk = chunk, level = opts.level or 1 })
    local todo, reasons = {}, {}
    local skipped, redone = 0, 0
    for _, c in ipairs(ds.cases) do
      if not only or only[c.id] then
        local base = paths.join(dir, c.id)
        local status, why, rec = prov.check(ds, c, plans_name, cfg_name, fields, base, { rehash = opts.rehash })
        if status == "ok" then
          skipped = skipped + 1
          if rec then prov.write(base, rec) end -- same bytes, new times: keep the next check quick
        else
          if status == "redo" then
            redone = redone + 1
            reasons[#reasons + 1] = { id = c.id, reason = why }
            if opts.log then opts.log(string.format("%s: case %s redone because %s", cfg_name, c.id, why)) end
          end
          -- the old record goes first: a kill during the redo leaves the case without one, so it is redone again
          os.remove(prov.path(base))
          todo[#todo + 1] = c
        end
      end
    end
    local foreign = foreign_cases(parent)
    local draw = progress_bar(cfg_name, #todo, progress)
    draw(0)
    -- parallel over cases: `workers` cases in flight in C threads (each preprocessed and written to its store
    -- there); this thread reads the next case meanwhile and writes the properties of finished ones
    local workers = math.max(1, math.min(threads, #todo))
    local pool = core.preprocess.pool(cfg, workers, math.max(1, threads // workers), chunk, opts.level or 1)
    local rprops, raw_ids, ndone = {}, {}, 0
    local function fail(tag, msg)
      pool:close()
      local id, m = todo[tag] and todo[tag].id or "?", tostring(msg)
      if m:sub(1, #id + 2) == id .. ": " then -- a value check: it names the case and the file already
        error(string.format("preprocess %s: case %s: %s; `lunet verify` lists every such problem of the dataset",
          cfg_name, id, m:sub(#id + 3)), 0)
      end
      error(string.format("preprocess %s: case %s: %s", cfg_name, id, m), 3)
    end
    local function handle(tag, ok, info)
      if not tag then return false end
      if not ok then fail(tag, info) end
      local base = paths.join(dir, todo[tag].id)
      local okw, err = pcall(function()
        fs.write_atomic(base .. ".json", M.encode_properties(properties(rprops[tag], info, cfg.class_keys)))
        -- last: the record exists only for a case whose store and properties are both complete
        prov.write(base, prov.record(ds, todo[tag], plans_name, cfg_name, fields, base, raw_ids[tag]))
        raw_ids[tag] = nil
      end)
      if not okw then fail(tag, err) end
      rprops[tag] = nil
      ndone = ndone + 1
      draw(ndone)
      return true
    end
    for i, c in ipairs(todo) do
      while pool:pending() >= workers do handle(pool:collect(true)) end
      local ok, err = pcall(function()
        raw_ids[i] = prov.raw_ids(ds, c)
        local ts, rp = read_images(c.images)
        local seg = c.label and require("lunet.io.image").read(c.label).data or nil
        -- bad values would pass silently: one Inf voxel makes the whole case Inf after normalisation, a label
        -- outside dataset.json's list trains as a phantom class (the fingerprint checks too, but preprocessing can
        -- run on its own)
        for k, t in ipairs(ts) do dataset().check_case_values(c.id, c.images[k], t) end
        if seg then dataset().check_case_values(c.id, c.label, seg, allowed, true) end
        rprops[i] = rp
        pool:submit(i, ts, seg, rp.spacing, paths.join(dir, c.id) .. ".lcs")
      end)
      if not ok then fail(i, err) end
      collectgarbage()
      while handle(pool:collect(false)) do end
    end
    while pool:pending() > 0 do handle(pool:collect(true)) end
    pool:close()
    summary[cfg_name] = { done = #todo, skipped = skipped, redone = redone, reasons = reasons, foreign = foreign,
      gt_refreshed = gt_refreshed, folder = dir, nnunet_folder = parent }
  end
  return summary
end

return setmetatable(M, { __call = function(_, ...) return M.run(...) end })
