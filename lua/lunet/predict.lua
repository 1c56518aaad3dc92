--[==[ lunet.predict: nnU-Net v2's inference (nnunetv2/inference/predict_from_raw_data.py:
nnUNetPredictor): preprocessing as in training, sliding windows
with Gaussian importance weighting and test-time mirroring, averaging over folds, export to the original geometry.

  local predict = require "lunet.predict"
  seg, probs, props = predict.image(model, image [, props] [, opts])       -- also lunet.predict(model, image, ...)
      model:  a model (see below), a list of models (fold ensemble: their logits are averaged), or a model folder
              table from predict.load_models
      image:  an img from lunet.io.image.read, a path, a list of paths/imgs (one per channel file), or a host tensor
              (C, Z, Y, X) in the file's array order with props = {spacing = {z, y, x}}
      opts:   plans (table/path), configuration, dataset_json (table/path) (default: the model's), step_size (0.5),
              disable_tta, tta_axes ({0, 1, 2}: a subset of the model's mirror axes), use_gaussian (true),
              prev_seg (cascade: previous stage's segmentation, tensor/path/img), probabilities (return them),
              threads (2), progress (function(done, total) over windows), half (true: emulate nnU-Net's float16
              accumulators and logits for parity; false: float32 throughout), mirror_batch (mirrorings of a
              window per forward, as one batch; default 2 for 2-D models, 1 for 3-D)
      -> seg: (Z, Y, X) u8/u16 tensor in the input's array order and shape; probs (C, Z, Y, X) f32 or nil;
         props: the case properties (as preprocess writes them, used by lunet.ensemble)
  predict.folder{input=, output=, dataset=, configuration=, folds={0..4}|"all", plans="nnUNetPlans",
                 trainer="nnUNetTrainer", checkpoint="checkpoint_final", step_size=0.5, disable_tta=false,
                 tta_axes=nil, save_probabilities=false, prev_stage_predictions=nil, device=nil, threads=2,
                 models=nil (preloaded models: skips loading), progress=true|false, continue_prediction=false,
                 preprocess_workers=1 (-npp: cases preprocessed ahead in child processes; 0: in line),
                 export_workers=1 (-nps: exports in child processes; 0: in line), stream=nil|true|false,
                 mirror_batch=nil (2-D: 2, 3-D: 1), precision="auto" (see load_models)}
      writes <output>/<case><file_ending> with the input's exact geometry, and with save_probabilities
      <case>.npz ("probabilities", float32, (C, *original array shape)) + <case>.json (properties; nnU-Net
      writes a .pkl); plus dataset.json, plans.json, predict_from_raw_data_args.json. Returns the case ids and
      how many of them continue_prediction skipped (their outputs existed).
  predict.load_models{model_dir=, folds=, checkpoint=, device=, precision=} -> models, plans, dataset_json, configuration
      precision: "auto" (default: "mixed" on a GPU, as nnU-Net's predictor autocasts on CUDA; "fp32" elsewhere),
      "mixed" (float16 activations inside the network, float32 input and logits) or "fp32"

A model is a table with forward(x) -> logits, or a lunet.net object (its first, full-resolution output is used):
x is a host tensor (1, C, pz, py, px) (2-D configurations: (1, C, py, px)); logits (1, K, ...) host or device,
f32 or f16, a new tensor each call (predict frees x and the logits once it has used them). Optional fields:
mirror_axes (the axes mirroring may use; default all spatial axes), plans, configuration, dataset_json, batched
(true: forward also takes a batch (B, C, ...) of mirrored windows and returns (B, K, ...)).

Large cases stream: the sliding window runs along axis 0 and finished rows are exported at once, class by class
(predict.stream), so the host never holds the K-class logits of the whole volume. By default a case streams when
those logits (float16) would exceed predict.stream_above_bytes (1 GiB); opts.stream = true / false decides
(predict.image and predict.folder; not with probabilities).

Lower-level pieces: predict.preprocessed(image, props, opts) -> data, props;
predict.sliding_window(models, data, settings) -> logits (K, Z, Y, X) in preprocessed space;
predict.export(logits, props, plans, configuration, label_info, opts) -> seg, probs;
predict.resample_to_seg(logits, target_shape, props, plans, configuration, label_info, opts) -> seg on another
  preprocessed grid (the cascade's predicted_next_stage);
predict.stream(models, data, props, plans, configuration, label_info, settings) -> seg (sliding window + export);
predict.can_stream(data_shape, props, plans, configuration) -> true | false, reason.
]==]
local core = require "lunet.core"
local json = require "lunet.util.json"
local term = require "lunet.util.term"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local labels = require "lunet.labels"

local M = {}
local infer = core.infer

local function planner() return require "lunet.planner" end
local function dataset_mod() return require "lunet.dataset" end

local function read_json_arg(v, what)
  if v == nil then return nil end
  if type(v) == "string" then
    local ok, t = pcall(json.read, v)
    if not ok then error(string.format("predict: cannot read %s %s: %s", what, v, tostring(t)), 3) end
    return t
  end
  return v
end

-- ------------------------------------------------------------------------------------------------ models

local function is_net(m) return type(m) == "table" and type(m.train_step) == "function" and m.core ~= nil end

--- forward function of a model: x -> logits (1, K, ...); on_device: a lunet.net leaves them on its device
local function forward_of(m, on_device)
  if type(m) == "function" then return m end
  if is_net(m) then
    return function(x)
      local outs = m:forward(x, { on_device = on_device })
      return outs[1]
    end
  end
  if type(m) == "table" and type(m.forward) == "function" then return m.forward end
  error("predict: a model must be a function, a table with forward(x), or a lunet.net", 3)
end

local function model_list(model)
  if type(model) == "table" and model[1] ~= nil and model.forward == nil and not is_net(model) then return model end
  return { model }
end

-- ------------------------------------------------------------------------------------------------ sliding window

local function flip_masks(axes, is2d)
  local bits = {}
  for _, a0 in ipairs(axes or {}) do
    local a = math.tointeger(a0) or a0
    local b = is2d and (a + 1) or a
    if math.type(a) ~= "integer" or b < 0 or b > 2 or (is2d and a > 1) then
      error("predict: mirror axis " .. tostring(a) .. " out of range", 3)
    end
    bits[#bits + 1] = 1 << b
  end
  -- the identity, then every non-empty subset in itertools.combinations order (by size, then lexicographic),
  -- as nnU-Net sums them (the float32 sum depends on the order)
  local masks = { 0 }
  local n = #bits
  local function combos(k, from, acc, m)
    if k == 0 then masks[#masks + 1] = m; return end
    for i = from, n do combos(k - 1, i + 1, acc, m | bits[i]) end
  end
  for k = 1, n do combos(k, 1, nil, 0) end
  return masks
end
M._flip_masks = flip_masks

--- Sliding-window logits (K, Z, Y, X) of a preprocessed volume data (C, Z, Y, X) f32, averaged over models;
--- float16 (as nnU-Net) unless s.half == false (float32).
--- s: patch (2 or 3 entries), step_size (0.5), mirror_axes (list or nil), use_gaussian (true), threads,
--- accumulate ("device" | "host"; default: on the networks' device when it is a GPU),
--- progress(done, total), half (default true: nnU-Net's float16 accumulators and results, emulated by rounding
--- in float32; false keeps float32 throughout).
--- Where the window sums live: on the networks' device when it is a GPU (s.accumulate == "device"
--- forces it, "host" forbids it); the host otherwise (PoCL's device memory is host memory, and the
--- threaded host loop is as fast there). Returns a device index or nil.
local function accumulation_device(models, mode)
  if mode == "host" then return nil end
  if mode ~= nil and mode ~= "device" then error("predict: accumulate must be \"device\" or \"host\"", 3) end
  local idx
  for _, m in ipairs(models) do
    if not is_net(m) then
      if mode == "device" then error("predict: accumulate = \"device\" needs lunet.net models", 3) end
      return nil
    end
    local d = m:device()
    if idx and d ~= idx then return nil end
    idx = d
  end
  if mode == "device" then return idx end
  local info = core.devices()[idx + 1]
  return info and info.type == "gpu" and idx or nil
end

--- The windows of a sliding window over data (C, Z, Y, X): padding, per-axis starts (padded coordinates),
--- importance map and mirror masks, as nnU-Net computes them.
local function window_plan(data, s, dev)
  local shp = data.shape
  if #shp ~= 4 then error("predict.sliding_window: data must be (C, Z, Y, X)", 3) end
  local w = { sp = { shp[2], shp[3], shp[4] }, is2d = #s.patch == 2, half = s.half ~= false }
  w.patch = w.is2d and { 1, s.patch[1], s.patch[2] } or { s.patch[1], s.patch[2], s.patch[3] }
  local step = s.step_size or 0.5
  w.padded, w.pad_before = {}, {}
  for a = 1, 3 do
    local d = math.max(0, w.patch[a] - w.sp[a])
    w.pad_before[a] = d // 2
    w.padded[a] = w.sp[a] + d
  end
  w.steps = {}
  for a = 1, 3 do
    if a == 1 and w.is2d then
      w.steps[1] = {}
      for d = 0, w.padded[1] - 1 do w.steps[1][d + 1] = d end
    else
      w.steps[a] = infer.steps(w.padded[a], w.patch[a], step)
    end
  end
  if s.use_gaussian ~= false then w.gauss = infer.gaussian(s.patch) end
  if w.gauss and dev then w.gauss = w.gauss:to_device(dev) end
  w.masks = flip_masks(s.mirror_axes, w.is2d)
  w.nwin = #w.steps[1] * #w.steps[2] * #w.steps[3]
  return w
end

--- One window of one model, summed over the mirror masks into win (allocated on first use, K from the
--- model's output): returns win. The mirrorings go through the network w.mb at a time, as one batch.
local function run_window(w, fwd, data, start, win, dev)
  local nm, i = #w.masks, 1
  while i <= nm do
    local n = math.min(w.mb, nm - i + 1)
    local xin = core.zeros(w.is2d and { n, data.shape[1], w.patch[2], w.patch[3] }
      or { n, data.shape[1], w.patch[1], w.patch[2], w.patch[3] }, "f32")
    for j = 0, n - 1 do infer.extract(data, w.pad_before, start, w.patch, w.masks[i + j], xin, j) end
    local out = fwd(xin)
    if not win then win = core.zeros({ 1, out.shape[2], w.patch[1], w.patch[2], w.patch[3] }, "f32", dev) end
    -- summed in nnU-Net's order of the mirrorings, whatever the batching
    for j = 0, n - 1 do infer.window_add(win, out, w.patch, w.masks[i + j], i + j == 1, j) end
    -- freed now, not at the next garbage collection: host memory stays at what the windows need
    if out ~= xin then out:free() end
    xin:free()
    i = i + n
  end
  return win
end

--- How many mirrorings of a window share a forward (s.mirror_batch), for models that take batches: lunet.net
--- ones, and tables with batched = true (forward(x) of (B, C, ...) -> (B, K, ...)). By default 2 for 2-D
--- windows, 1 for 3-D ones: the 2d plan's small maps (32^2 .. 4^2, 512 channels) then get twice the work
--- per pass over their weights and fill both cores (in-process 12-15% less time per mirroring; a 24-slice
--- case's sliding window 36.3 / 36.8 -> 35.6 / 34.1 s) for 225-365 MB more host memory (one more window's
--- activations); all 4 at once held 600 MB more, past nnunetv2's own peak, and a 3-D batch would hold a
--- whole 3-D window's activations per mirroring.
local function mirror_batch(models, w, s)
  local mb = s.mirror_batch
  if mb ~= nil and (math.type(mb) ~= "integer" or mb < 1) then
    error("predict: mirror_batch must be a positive integer, got " .. tostring(mb), 3)
  end
  for _, m in ipairs(models) do
    if not (is_net(m) or (type(m) == "table" and m.batched == true)) then return 1 end
  end
  return math.min(mb or (w.is2d and 2 or 1), #w.masks)
end

function M.sliding_window(models, data, s)
  models = model_list(models)
  local dev = accumulation_device(models, s.accumulate)
  local fwd = {}
  for i, m in ipairs(models) do fwd[i] = forward_of(m, dev ~= nil) end
  local w = window_plan(data, s, dev)
  w.mb = mirror_batch(models, w, s)
  local half, padded, patch = w.half, w.padded, w.patch
  local threads = s.threads or 2
  local total_steps = w.nwin * #fwd
  local done = 0
  if s.progress then s.progress(0, total_steps) end
  local result
  -- nnU-Net: one full sliding window per fold (float16 accumulators), fold results summed, then divided
  for fi = 1, #fwd do
    local acc, wsum, win
    for _, z in ipairs(w.steps[1]) do
      for _, y in ipairs(w.steps[2]) do
        for _, x in ipairs(w.steps[3]) do
          local start = { z, y, x }
          win = run_window(w, fwd[fi], data, start, win, dev)
          if not acc then
            -- float16 storage as nnU-Net (half the memory of float32) unless s.half == false
            acc = core.zeros({ win.shape[2], padded[1], padded[2], padded[3] }, half and "f16" or "f32", dev)
            wsum = core.zeros({ padded[1], padded[2], padded[3] }, half and "f16" or "f32", dev)
          end
          infer.accumulate(acc, wsum, win, w.gauss, start, patch, #w.masks, half, threads)
          done = done + 1
          if s.progress then s.progress(done, total_steps) end
        end
      end
    end
    if dev then
      local ha, hw = acc:to_host(), wsum:to_host()
      acc:free()
      wsum:free()
      acc, wsum = ha, hw
    end
    local lg = infer.finalize(acc, wsum, w.pad_before, w.sp, half)
    acc:free()
    wsum:free()
    if win then win:free() end
    if result then
      infer.add_(result, lg, half)
      lg:free()
    else
      result = lg
    end
  end
  if #fwd > 1 then infer.scale_(result, 1.0 / #fwd, half) end
  return result
end

-- ------------------------------------------------------------------------------------------------ export

local function resampling_opts(kw)
  kw = kw or {}
  local f = kw.force_separate_z
  if f == json.null then f = nil end
  return { is_seg = false, order = kw.order or 1, order_z = kw.order_z or 0, force_separate_z = f }
end

--- Where the preprocessed grid goes back to: the cropped region's shape (target), the spacings (transposed
--- order) before and after preprocessing, the resampling options for probabilities, the transpositions.
local function export_geometry(props, plans, cfg_name)
  local c = planner().configuration(plans, cfg_name)
  local g = { tf = plans.transpose_forward or { 0, 1, 2 }, tb = plans.transpose_backward or { 0, 1, 2 } }
  g.sp_t = {}
  for i = 1, 3 do g.sp_t[i] = props.spacing[g.tf[i] + 1] end
  g.target = props.shape_after_cropping_and_before_resampling
  g.cur_sp = #c.spacing == 3 and c.spacing or { g.sp_t[1], c.spacing[1], c.spacing[2] }
  g.ro = resampling_opts(c.resampling_fn_probabilities_kwargs)
  return g
end

local function seg_dtype_of(info)
  return #(info.foreground_labels or {}) < 255 and "u8" or "u16"
end

--- A cropped, transposed volume (seg, or (C, ...) probabilities) back to the original array: un-crop (fill
--- fill0 in channel 0, 0 elsewhere), un-transpose. Frees t when it makes a new one.
local function revert_to_original(t, props, tb, fill0)
  local full = props.shape_before_cropping
  local bbox = props.bbox_used_for_cropping
  local whole = true
  for a = 1, 3 do
    if bbox[a][1] ~= 0 or bbox[a][2] ~= full[a] then whole = false end
  end
  if not whole then
    local u = infer.uncrop(t, full, bbox, fill0)
    t:free()
    t = u
  end
  if not (tb[1] == 0 and tb[2] == 1 and tb[3] == 2) then
    local u = infer.transpose(t, tb)
    t:free()
    t = u
  end
  return t
end

-- Logits (K, z, y, x) -> segmentation on the grid `target`: one resampled class volume at a time (plus the running
-- maximum for argmax, or the region rule), so a full-resolution export never holds all K maps at once.
local function resample_classes_to_seg(logits, target, cur_sp, new_sp, ro, info, seg_dtype, threads, half)
  local seg = core.zeros({ target[1], target[2], target[3] }, seg_dtype)
  local maxv = (not info.has_regions) and core.zeros({ target[1], target[2], target[3] }, "f32") or nil
  for k = 0, logits.shape[1] - 1 do
    local cls = infer.channel(logits, k)
    local r = core.preprocess.resample(cls, target, cur_sp, new_sp, ro, threads)
    if half then infer.round_half_(r) end
    cls:free()
    if info.has_regions then infer.region_update(r, info.regions_class_order[k + 1], seg)
    else infer.argmax_update(r, k, maxv, seg) end
    r:free()
  end
  if maxv then maxv:free() end
  return seg
end

--- Logits (K, z, y, x) in preprocessed space -> segmentation (and probabilities) in the original array order.
--- opts: probabilities (bool), threads, half (round resampled logits to float16 as nnU-Net's float16 arrays;
--- default true).
function M.export(logits, props, plans, cfg_name, info, opts)
  opts = opts or {}
  local threads = opts.threads or 2
  local half = opts.half ~= false
  local g = export_geometry(props, plans, cfg_name)
  local target = g.target
  local seg_dtype = seg_dtype_of(info)
  local seg, probs
  if opts.probabilities then
    local src = logits.dtype == "f32" and logits or logits:astype("f32")
    local r = core.preprocess.resample(src, target, g.cur_sp, g.sp_t, g.ro, threads)
    if half then infer.round_half_(r) end
    infer.softmax(r, info.has_regions, threads)
    if info.has_regions then seg = core.eval.probs_to_seg(r, info.regions_class_order)
    else seg = core.eval.probs_to_seg(r) end
    if seg.dtype ~= seg_dtype then seg = seg:astype(seg_dtype) end
    probs = r
  else
    seg = resample_classes_to_seg(logits, target, g.cur_sp, g.sp_t, g.ro, info, seg_dtype, threads, half)
  end
  seg = revert_to_original(seg, props, g.tb, 0)
  if probs then probs = revert_to_original(probs, props, g.tb, info.has_regions and 0 or 1) end
  return seg, probs
end

--- Logits (K, z, y, x) in preprocessed space -> segmentation of shape target (the next stage's preprocessed grid), as
--- nnunetv2's resample_and_save exports the 3d_lowres validation for the cascade: the configuration's
--- resampling_fn_probabilities with its own spacing as both current and target spacing, then argmax (regions: the
--- region rule). No un-cropping, no transposition. opts: threads, half (as export).
function M.resample_to_seg(logits, target, props, plans, cfg_name, info, opts)
  opts = opts or {}
  local threads = opts.threads or 2
  local half = opts.half ~= false
  local g = export_geometry(props, plans, cfg_name)
  return resample_classes_to_seg(logits, target, g.cur_sp, g.cur_sp, g.ro, info, seg_dtype_of(info), threads, half)
end

-- ------------------------------------------------------------------------------------------------ streaming

--- Whether a case can be predicted and exported slab by slab (resampling back to the original grid must be
--- local along axis 0: orders 0/1, or separate z across axis 0). Returns true, or false and the reason.
function M.can_stream(data_shape, props, plans, cfg_name)
  local g = export_geometry(props, plans, cfg_name)
  local sp = { data_shape[#data_shape - 2], data_shape[#data_shape - 1], data_shape[#data_shape] }
  local lo, why = core.preprocess.resample_rows_needed(sp, g.target, g.cur_sp, g.sp_t, g.ro, 0, 1)
  if lo then return true end
  return false, why
end

--- Sliding window and export in one pass along axis 0 of the preprocessed volume data (C, Z, Y, X), for a
--- segmentation (no probabilities): after each row of windows, the rows no later window touches are divided
--- by the weights, resampled to the original spacing class by class (core.preprocess.resample_rows: the same
--- values as the whole-volume resampling) and folded into the argmax / region labels. The host then holds
--- the K-class accumulators for one patch of rows plus one, not for the volume, and one slab of one class
--- at full resolution. The windows and the float16 rounding are nnU-Net's as in sliding_window + export, and
--- one model gives the same segmentation bit for bit; with several models their windows share one
--- accumulator (mean over models of the Gaussian-weighted sums), which can round differently in float16.
--- s: as sliding_window (host accumulation only) plus threads. Returns seg in the original array order.
function M.stream(models, data, props, plans, cfg_name, info, s)
  models = model_list(models)
  local fwd = {}
  for i, m in ipairs(models) do fwd[i] = forward_of(m, false) end
  local w = window_plan(data, s, nil)
  w.mb = mirror_batch(models, w, s)
  local g = export_geometry(props, plans, cfg_name)
  local target, half, patch, pb = g.target, w.half, w.patch, w.pad_before
  local threads = s.threads or 2
  local nin = w.sp[1]
  local pre = core.preprocess
  local function needed(o0, n)
    local lo, hi = pre.resample_rows_needed(w.sp, target, g.cur_sp, g.sp_t, g.ro, o0, n)
    if not lo then error("predict: this case does not stream: " .. tostring(hi), 3) end
    return lo, hi
  end
  needed(0, 1)
  local seg = core.zeros({ target[1], target[2], target[3] }, seg_dtype_of(info))
  local plane = target[2] * target[3]
  -- the ring holds padded rows [base, base + R): one patch of rows plus the one row below it that the
  -- export's linear taps may still read (see the shift below)
  local R = patch[1] + 1
  local acc, wsum, win
  local base = 0
  local o_next = 0
  local K
  local function export_ready(fin_hi)
    -- output rows whose every tap lies in the finished rows [0, fin_hi)
    local o1 = o_next
    while o1 < target[1] do
      local _, hi = needed(o1, 1)
      if hi >= fin_hi then break end
      o1 = o1 + 1
    end
    if o1 == o_next then return end
    local n = o1 - o_next
    local lo, hi = needed(o_next, n)
    local maxv = (not info.has_regions) and core.zeros({ n * plane }, "f32") or nil
    for k = 0, K - 1 do
      local cls = infer.finalize(acc, wsum, { lo + pb[1] - base, pb[2], pb[3] }, { hi - lo + 1, w.sp[2], w.sp[3] },
        half, k)
      if #fwd > 1 then infer.scale_(cls, 1.0 / #fwd, half) end
      local c32 = cls.dtype == "f32" and cls or cls:astype("f32")
      if c32 ~= cls then cls:free() end
      local r = pre.resample_rows(c32, lo, nin, target, o_next, n, g.cur_sp, g.sp_t, g.ro, threads)
      c32:free()
      if half then infer.round_half_(r) end
      if info.has_regions then infer.region_update(r, info.regions_class_order[k + 1], seg, o_next * plane)
      else infer.argmax_update(r, k, maxv, seg, o_next * plane) end
      r:free()
    end
    if maxv then maxv:free() end
    o_next = o1
  end
  local total_steps = w.nwin * #fwd
  local done = 0
  if s.progress then s.progress(0, total_steps) end
  local zs = w.steps[1]
  for zi, z in ipairs(zs) do
    if z - base < 0 or z - base + patch[1] > R then
      error(string.format("predict.stream: window rows [%d, %d) outside the ring [%d, %d)", z, z + patch[1], base,
        base + R), 2)
    end
    for fi = 1, #fwd do
      for _, y in ipairs(w.steps[2]) do
        for _, x in ipairs(w.steps[3]) do
          win = run_window(w, fwd[fi], data, { z, y, x }, win, nil)
          if not acc then
            K = win.shape[2]
            acc = core.zeros({ K, R, w.padded[2], w.padded[3] }, half and "f16" or "f32")
            wsum = core.zeros({ R, w.padded[2], w.padded[3] }, half and "f16" or "f32")
          end
          -- the weights once (first model): the finished sum is then the sum over models, divided after
          infer.accumulate(acc, fi == 1 and wsum or nil, win, w.gauss, { z - base, y, x }, patch, #w.masks, half,
            threads)
          done = done + 1
          if s.progress then s.progress(done, total_steps) end
        end
      end
    end
    local next_z = zs[zi + 1]
    -- rows below the next row of windows are final (unpadded coordinates)
    local fin_hi = next_z and math.min(nin, next_z - pb[1]) or nin
    if fin_hi > 0 then export_ready(fin_hi) end
    if next_z then
      -- keep from the lowest row the next output reads (>= next_z - 1: its taps straddle fin_hi) or next_z
      local keep = next_z
      if o_next < target[1] then keep = math.min(keep, needed(o_next, 1) + pb[1]) end
      if keep > base then
        infer.shift_rows_(acc, math.min(keep - base, R))
        infer.shift_rows_(wsum, math.min(keep - base, R))
        base = keep
      end
    end
  end
  if o_next ~= target[1] then
    error(string.format("predict.stream: exported %d of %d rows", o_next, target[1]), 2)
  end
  acc:free()
  wsum:free()
  win:free()
  return revert_to_original(seg, props, g.tb, 0)
end

-- ------------------------------------------------------------------------------------------------ one image

local function tensor_of(x)
  if type(x) == "userdata" then return x end
  if type(x) == "table" and x.data then return x.data end
  return nil
end

--- Refuses an input holding NaN/Inf, naming the file: the network's output would be NaN everywhere, and the
--- sliding window would only report non-finite logits later, without saying where they came from.
local function check_finite(t, name)
  local ok, err = pcall(core.values.check_image, t, name)
  if not ok then error("predict: " .. tostring(err) .. "; a prediction needs finite input voxels", 0) end
end

-- images -> list of channel tensors, reader props {spacing=, sitk_stuff=}, like (geometry for writing)
local function gather_images(image, props)
  local image_mod = require "lunet.io.image"
  local list
  if type(image) == "string" or (type(image) == "table" and image.data) or type(image) == "userdata" then
    list = { image }
  else
    list = image
  end
  local ts, rprops, like = {}, nil, nil
  for i, im in ipairs(list) do
    local name = type(im) == "string" and im or ("image " .. i)
    if type(im) == "string" then im = image_mod.read(im) end
    local t = tensor_of(im)
    if not t then error("predict: image " .. i .. " is not a tensor, an image or a path", 3) end
    check_finite(t, type(im) == "table" and im.path or name)
    ts[i] = t
    if type(im) == "table" and not like then
      like = im
      rprops = { spacing = im.spacing, sitk_stuff = im.sitk }
    end
  end
  if props then
    rprops = rprops or {}
    for k, v in pairs(props) do rprops[k] = v end
  end
  if not rprops or not rprops.spacing then error("predict: no spacing (pass props = {spacing = {z, y, x}})", 3) end
  return ts, rprops, like
end

local function default_mirror_axes(is2d) return is2d and { 0, 1 } or { 0, 1, 2 } end

--- The mirroring axes used: the model's allowed axes (default all), restricted to tta_axes; nil when disabled.
function M.mirror_axes(models, is2d, opts)
  if opts.disable_tta then return nil end
  local allowed = models[1].mirror_axes or default_mirror_axes(is2d)
  if not opts.tta_axes then return allowed end
  local ok, out = {}, {}
  for _, a in ipairs(allowed) do ok[math.tointeger(a) or a] = true end
  for _, a in ipairs(opts.tta_axes) do
    if not ok[a] then error("predict: --tta-axes " .. tostring(a) .. " is not among the model's mirror axes", 3) end
    out[#out + 1] = a
  end
  table.sort(out)
  return out
end

--- Preprocess one case in memory (plus the cascade's one-hot channels). Returns data, props.
local function preprocess_case(ts, rprops, plans, cfg_name, info, prev_seg, threads)
  local pre = require "lunet.preprocess"
  local cfg = pre.config(plans, cfg_name, nil)
  if prev_seg then
    if type(prev_seg) == "string" then prev_seg = require("lunet.io.image").read(prev_seg).data end
    if type(prev_seg) == "table" and prev_seg.data then prev_seg = prev_seg.data end
    local d, s, p = pre.run_case(ts, prev_seg, rprops, plans, cfg, { threads = threads })
    local foreground = info.foreground_labels
    local d2 = infer.onehot_append(d, s, foreground)
    return d2, p
  end
  local d, _, p = pre.run_case(ts, nil, rprops, plans, cfg, { threads = threads })
  return d, p
end

--- The preprocessed case as predict.image sees it: data (C, Z, Y, X) f32 and the case properties.
--- opts: plans, configuration, dataset_json (tables or paths), prev_seg (cascade), threads.
function M.preprocessed(image, props, opts)
  opts = opts or {}
  local plans = read_json_arg(opts.plans, "plans")
  local dj = read_json_arg(opts.dataset_json, "dataset.json")
  if not plans or not opts.configuration or not dj then
    error("predict.preprocessed: need plans, configuration and dataset_json", 2)
  end
  local ts, rprops = gather_images(image, props)
  return preprocess_case(ts, rprops, plans, opts.configuration, labels.of_dataset_json(dj), opts.prev_seg, opts.threads or 2)
end

--- Streaming pays off when the K-class logits of the preprocessed volume would be large; below this many
--- bytes (float16 logits) the whole-volume path is kept, whose export can run in a separate process while
--- the next case is predicted. opts.stream = true / false overrides.
M.stream_above_bytes = 1 << 30

--- Whether to stream this case: opts.stream (true / false / nil = by size), never with probabilities.
local function choose_stream(opts, data, p, plans, cfg_name, info)
  if opts.probabilities or opts.stream == false then return false end
  local ok, why = M.can_stream(data.shape, p, plans, cfg_name)
  if opts.stream == true then
    if not ok then error("predict: stream = true, but " .. tostring(why), 4) end
    return true
  end
  if not ok then return false end
  local n = info.num_segmentation_heads * (opts.half == false and 4 or 2)
  for i = 2, #data.shape do n = n * data.shape[i] end
  return n > (opts.stream_above_bytes or M.stream_above_bytes)
end

--- One case: preprocess, then either sliding window -> logits (mode "logits"), the same plus export (mode
--- "seg"), or, where the case streams (mode "auto" or "seg"), M.stream. Returns kind ("logits" | "seg"),
--- logits or seg, probs, props.
local function run_case(model, image, props, opts, mode)
  opts = opts or {}
  local models = model_list(model)
  local m1 = models[1]
  local plans = read_json_arg(opts.plans or m1.plans, "plans")
  local cfg_name = opts.configuration or m1.configuration
  local dj = read_json_arg(opts.dataset_json or m1.dataset_json, "dataset.json")
  if not plans or not cfg_name or not dj then
    error("predict.image: need plans, configuration and dataset_json (in opts or on the model)", 3)
  end
  local info = labels.of_dataset_json(dj)
  local threads = opts.threads or 2
  local now, tm = core.now, opts.timings
  local t0 = now()
  local data, p
  if opts.preprocessed then
    data, p = opts.preprocessed.data, opts.preprocessed.props
  else
    local ts, rprops = gather_images(image, props)
    data, p = preprocess_case(ts, rprops, plans, cfg_name, info, opts.prev_seg, threads)
  end
  local t1 = now()
  if tm then tm.preprocess = (tm.preprocess or 0) + (t1 - t0) end
  local c = planner().configuration(plans, cfg_name)
  local is2d = #c.patch_size == 2
  local settings = {
    patch = c.patch_size, step_size = opts.step_size or 0.5, use_gaussian = opts.use_gaussian,
    mirror_axes = M.mirror_axes(models, is2d, opts), threads = threads, progress = opts.progress, half = opts.half,
    mirror_batch = opts.mirror_batch,
  }
  if mode ~= "logits" and choose_stream(opts, data, p, plans, cfg_name, info) then
    local seg = M.stream(models, data, p, plans, cfg_name, info, settings)
    data:free()
    if tm then tm.predict = (tm.predict or 0) + (now() - t1) end
    return "seg", seg, nil, p
  end
  local logits = M.sliding_window(models, data, settings)
  data:free()
  local t2 = now()
  if tm then tm.predict = (tm.predict or 0) + (t2 - t1) end
  if mode ~= "seg" then return "logits", logits, nil, p end
  local seg, probs = M.export(logits, p, plans, cfg_name, info, { probabilities = opts.probabilities, threads = threads,
    half = opts.half })
  logits:free()
  if tm then tm.export = (tm.export or 0) + (now() - t2) end
  return "seg", seg, probs, p
end

function M.image(model, image, props, opts)
  opts = opts or {}
  local _, out, probs, p = run_case(model, image, props, opts, opts.return_logits and "logits" or "seg")
  if opts.return_logits then return out, p end
  return out, probs, p
end

-- ------------------------------------------------------------------------------------------------ models on disk

local function find_checkpoint(dir, name)
  if not paths.isdir(dir) then error("predict: model fold folder not found: " .. dir, 4) end
  local cands = {}
  for _, f in ipairs(paths.listdir(dir)) do
    if f == name or f:sub(1, #name + 1) == name .. "." then cands[#cands + 1] = f end
  end
  table.sort(cands)
  if #cands == 0 then error("predict: no checkpoint " .. name .. ".* in " .. dir, 4) end
  return paths.join(dir, cands[1])
end

--- The configuration a results folder was trained for: the checkpoint's init_args (as nnU-Net's
--- initialize_from_trained_model_folder reads it), else the folder name <trainer>__<plans>__<configuration>.
function M.model_configuration(dir, fold, checkpoint)
  local fd = paths.join(dir, fold == "all" and "fold_all" or ("fold_" .. tostring(fold)))
  local ok, ck = pcall(find_checkpoint, fd, checkpoint or "checkpoint_final")
  if ok then
    local h = require("lunet.net").read_header(ck)
    if type(h) == "table" and type(h.configuration) == "string" then return h.configuration end
  end
  local cfg = paths.basename(dir):match("^.-__.-__(.+)$")
  if not cfg then error("predict: cannot tell the configuration of " .. dir .. " (no checkpoint, no " ..
    "<trainer>__<plans>__<configuration> name); give -c", 0) end
  return cfg
end

--- Models of a results folder <trainer>__<plans>__<configuration> for the given folds.
function M.load_models(o)
  local dir = o.model_dir
  local plans = read_json_arg(paths.join(dir, "plans.json"), "plans")
  local dj = read_json_arg(paths.join(dir, "dataset.json"), "dataset.json")
  local info = labels.of_dataset_json(dj)
  local cfg_name = o.configuration
  local c = planner().configuration(plans, cfg_name)
  local nin = 0
  for _ in pairs(dj.channel_names or dj.modality or {}) do nin = nin + 1 end
  if c.previous_stage and c.previous_stage ~= json.null then nin = nin + #info.foreground_labels end
  local net = require "lunet.net"
  local models = {}
  for i, f in ipairs(o.folds) do
    local fd = paths.join(dir, f == "all" and "fold_all" or ("fold_" .. tostring(f)))
    local ck = find_checkpoint(fd, o.checkpoint or "checkpoint_final")
    local n = net.new(plans, cfg_name, nin, info.num_segmentation_heads, { device = o.device, dataset_json = dj,
      init = false })
    local meta = n:load(ck, { momentum = false }) -- prediction never makes the optimiser's buffers
    n:freeze_weights() -- the windows' forwards pack each conv's weights once
    n.inference_precision = net.precision(o.precision, n:device())
    n.core:set_half_inference(n.inference_precision == "mixed")
    local m = { net = n, plans = plans, dataset_json = dj, configuration = cfg_name }
    if type(meta) == "table" and type(meta.inference_allowed_mirroring_axes) == "table" then
      m.mirror_axes = {}
      for j, a in ipairs(meta.inference_allowed_mirroring_axes) do m.mirror_axes[j] = math.tointeger(a) or a end
    end
    m.forward = function(x) return n:forward(x)[1] end
    m.batched = true -- forward takes a batch of mirrored windows
    models[i] = m
  end
  return models, plans, dj, cfg_name
end

-- ------------------------------------------------------------------------------------------------ folders


--- Lua source for a value of plain tables, strings, numbers and booleans; floats as hex (%q), so the
--- geometry read back is bit-identical.
local function serialize(v)
  local t = type(v)
  if t == "number" or t == "string" or t == "boolean" or t == "nil" then return string.format("%q", v) end
  if t ~= "table" then error("predict: cannot pass a " .. t .. " between processes", 2) end
  local parts = {}
  for k, x in pairs(v) do parts[#parts + 1] = "[" .. serialize(k) .. "]=" .. serialize(x) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function bar(n, total, w)
  local fill = total > 0 and math.floor(w * n / total) or w
  return string.rep("#", fill) .. string.rep(".", w - fill)
end

-- Scratch folders of the preprocessing workers are <output>/.lunet-preprocess-<pid>-<host>: a run that was killed
-- leaves its own behind, and the next run on the same host removes those whose process is gone. Where the pid is
-- unknown (no /proc) the name is random and nothing is removed.
local function read_line(path)
  local f = io.open(path, "r")
  if not f then return nil end
  local l = f:read("l")
  f:close()
  return l
end

local function scratch_owner()
  local pid = math.tointeger(tonumber((read_line("/proc/self/stat") or ""):match("^(%d+)")))
  local host = (read_line("/proc/sys/kernel/hostname") or "localhost"):gsub("[^%w%.]", "_")
  return pid, host
end

local function remove_stale_scratch(output, own_pid, host, only_cases)
  -- half-written outputs of a killed run: this run holds the folder's lock, so no live writer owns them (a part of
  -- a split prediction: of its own cases only, the other parts may be writing theirs)
  fs.remove_temp_files(output, only_cases and function(name)
    local case = name:match("^(.-)%.") -- <case>.<ending>.tmp-...: case ids carry no dot in nnU-Net's layout
    return case ~= nil and only_cases[case] == true
  end)
  if not own_pid or not paths.isdir("/proc/self") then return end
  for _, n in ipairs(paths.listdir(output)) do
    -- "<pid>-<host>", or "<number>" as earlier versions named it
    local pid, h = n:match("^%.lunet%-preprocess%-(%d+)%-(.+)$")
    if not pid then pid, h = n:match("^%.lunet%-preprocess%-(%d+)$"), host end
    pid = math.tointeger(tonumber(pid))
    -- gone, or a zombie (killed, and its parent does not reap: PID 1 of some containers)
    local st = pid and (read_line("/proc/" .. pid .. "/stat") or ""):match("%) (%a)")
    if pid and h == host and pid ~= own_pid and (not paths.isdir("/proc/" .. pid) or st == "Z") then
      fs.rmtree(paths.join(output, n))
    end
  end
end

-- A wrong -c (or -tr/-p) names what there is: the configurations trained with this trainer and plans, and the
-- configurations of the plans in nnUNet_preprocessed.
local function missing_model_message(dataset, trainer, plans_name, cfg_name, model_dir)
  local msg = "predict: model folder not found: " .. model_dir
  local res = paths.results_dataset(dataset)
  local trained = {}
  if paths.isdir(res) then
    local prefix = trainer .. "__" .. plans_name .. "__"
    for _, n in ipairs(paths.listdir(res)) do
      if n:sub(1, #prefix) == prefix then trained[#trained + 1] = n:sub(#prefix + 1) end
    end
    table.sort(trained)
  end
  msg = msg .. string.format("; configurations trained with %s and %s: %s", trainer, plans_name,
    #trained > 0 and table.concat(trained, ", ") or "none")
  local pfile = paths.join(paths.preprocessed_dataset(dataset), plans_name .. ".json")
  if paths.isfile(pfile) then
    local okp, plans = pcall(json.read, pfile)
    if okp and type(plans) == "table" and type(plans.configurations) == "table" then
      local names = {}
      for k in pairs(plans.configurations) do names[#names + 1] = k end
      table.sort(names)
      msg = msg .. string.format("; configurations of %s: %s", pfile, table.concat(names, ", "))
    end
  end
  return msg
end

function M.folder(o)
  if type(o) ~= "table" then error("predict.folder: expected an options table", 2) end
  if not o.input or not paths.isdir(o.input) then error("predict: input folder not found: " .. tostring(o.input), 2) end
  if not o.output then error("predict: no output folder", 2) end
  local threads = o.threads or 2
  local t_load = core.now()
  local models, plans, dj, cfg_name = o.models, read_json_arg(o.plans_json, "plans"), read_json_arg(o.dataset_json, "dataset.json"), o.configuration
  local model_dir
  if not models then
    if o.model_dir then
      -- nnUNetv2_predict_from_modelfolder: the folder as given, the configuration from its checkpoints
      model_dir = o.model_dir
      if not paths.isdir(model_dir) then error("predict: model folder not found: " .. model_dir, 0) end
    else
      local trainer = o.trainer or "nnUNetTrainer"
      local plans_name = o.plans or "nnUNetPlans"
      if not o.dataset then error("predict: no dataset (-d)", 2) end
      if not cfg_name then error("predict: no configuration (-c)", 2) end
      model_dir = paths.join(paths.results_dataset(o.dataset), paths.model_identifier(trainer, plans_name, cfg_name))
      if not paths.isdir(model_dir) then error(missing_model_message(o.dataset, trainer, plans_name, cfg_name, model_dir), 0) end
    end
    local folds = o.folds
    if folds == "all" then folds = { "all" } end
    if not folds then
      folds = {}
      for f = 0, 4 do
        if paths.isdir(paths.join(model_dir, "fold_" .. f)) then folds[#folds + 1] = f end
      end
      if #folds == 0 and paths.isdir(paths.join(model_dir, "fold_all")) then folds = { "all" } end
      if #folds == 0 then error("predict: no fold_N folders in " .. model_dir, 2) end
    end
    cfg_name = cfg_name or M.model_configuration(model_dir, folds[1], o.checkpoint)
    models, plans, dj, cfg_name = M.load_models{ model_dir = model_dir, folds = folds, checkpoint = o.checkpoint,
      configuration = cfg_name, device = o.device, precision = o.precision }
  else
    models = model_list(models)
    plans = plans or read_json_arg(models[1].plans, "plans")
    dj = dj or read_json_arg(models[1].dataset_json, "dataset.json")
    cfg_name = cfg_name or models[1].configuration
  end
  local c = planner().configuration(plans, cfg_name)
  local prev_dir = o.prev_stage_predictions
  if c.previous_stage and c.previous_stage ~= json.null and not prev_dir then
    error("predict: configuration " .. cfg_name .. " is a cascade stage: --prev-stage-predictions is required", 2)
  end
  local info = labels.of_dataset_json(dj)
  local ending = dj.file_ending
  local cases = dataset_mod().cases_in_folder(o.input, ending)
  if #cases == 0 then error("predict: no images ending in " .. ending .. " in " .. o.input, 2) end
  if (o.num_parts or 1) > 1 then
    -- nnU-Net's list[part_id::num_parts] over the sorted cases
    local part = {}
    for i, c in ipairs(cases) do if (i - 1) % o.num_parts == (o.part_id or 0) then part[#part + 1] = c end end
    cases = part
    if #cases == 0 then return {}, 0 end
  end
  paths.mkdirs(o.output)
  -- one prediction per output folder, for the whole run (released on return and on error): two would leave
  -- outputs that disagree with predict_from_raw_data_args.json. Export children share it and never release it.
  -- a split prediction (-num_parts/-part_id, several runs into one folder) locks its own part of the folder and
  -- clears only its own cases' leftovers
  local parts = (o.num_parts or 1) > 1
  local lock <close> = core.lock.acquire(o.output, parts and ("prediction output folder (part %d of %d)"):format(
    o.part_id or 0, o.num_parts) or "prediction output folder",
    parts and (".lunet-part-%d-of-%d.lock"):format(o.part_id or 0, o.num_parts) or nil)
  local own_pid, host = scratch_owner()
  local mine
  if parts then
    mine = {}
    for _, c in ipairs(cases) do mine[c.id] = true end
  end
  remove_stale_scratch(o.output, own_pid, host, mine)
  json.write(paths.join(o.output, "dataset.json"), dj, { sort_keys = false })
  json.write(paths.join(o.output, "plans.json"), plans, { sort_keys = false })
  json.write(paths.join(o.output, "predict_from_raw_data_args.json"), {
    list_of_lists_or_source_folder = o.input, output_folder_or_list_of_truncated_output_files = o.output,
    save_probabilities = o.save_probabilities and true or false, tile_step_size = o.step_size or 0.5,
    use_mirroring = not o.disable_tta, configuration = cfg_name, model_dir = model_dir or json.null,
    folds = o.folds == "all" and "all" or (o.folds or json.null), checkpoint_name = o.checkpoint or "checkpoint_final",
    prev_stage_predictions = prev_dir or json.null,
  })
  local progress = o.progress
  if progress == nil then progress = term.stderr_is_tty() end
  local ids, skipped = {}, 0 -- skipped: outputs kept by continue_prediction
  local ncase = #cases
  local tm = {}
  -- exports in child processes (nnU-Net's -nps): case k is resampled and written while k+1 is predicted
  local workers = o.export_workers or 1
  local proc = core.proc
  local pending = {}
  local function reap(n)
    for _ = 1, n do
      local job = table.remove(pending, 1)
      if not job then return end
      local okw, code = proc.wait(job.pid)
      if not okw then
        error(string.format("predict: case %s: export failed (child exit %d; its message is above)", job.id, code), 0)
      end
    end
  end
  local function is_done(case)
    local out_base = paths.join(o.output, case.id)
    return o.continue_prediction and paths.isfile(out_base .. ending)
      and (not o.save_probabilities or paths.isfile(out_base .. ".npz"))
  end
  local function prev_of(case)
    if not prev_dir then return nil end
    local prev = paths.join(prev_dir, case.id .. ending)
    if not paths.isfile(prev) then error("predict: previous stage prediction missing: " .. prev, 3) end
    return prev
  end
  local function read_case(case)
    local imgs = {}
    for i, f in ipairs(case.images) do
      imgs[i] = require("lunet.io.image").read(f)
      check_finite(imgs[i].data, case.id .. ": " .. f)
    end
    return imgs
  end
  -- preprocessing in child processes (nnU-Net's -npp): the next cases are read, cropped, normalised and
  -- resampled while this one is predicted; a child leaves <scratch>/<i>.npy and the properties beside it
  local npp = o.preprocess_workers or 1
  local scratch
  local ahead = {}
  local function start_preprocess(ci)
    local case = cases[ci]
    if not case or ahead[ci] or is_done(case) then return end
    local prev = prev_of(case)
    if not scratch then
      scratch = paths.join(o.output, own_pid and string.format(".lunet-preprocess-%d-%s", own_pid, host)
        or string.format(".lunet-preprocess-r%d", math.random(0, 1 << 30)))
      paths.mkdirs(scratch)
    end
    local base = paths.join(scratch, tostring(ci))
    core.finish()
    local pid = proc.fork()
    if pid == 0 then
      collectgarbage("stop") -- as the export children: host code only
      local okc, errc = pcall(function()
        local imgs = read_case(case)
        local data, p = M.preprocessed(imgs, nil, { plans = plans, configuration = cfg_name, dataset_json = dj,
          prev_seg = prev, threads = threads })
        require("lunet.io.npy").write(base .. ".npy", data)
        local im = imgs[1]
        local fh = assert(io.open(base .. ".lua", "wb"))
        local like = { reader = im.reader, spacing = im.spacing, sitk = im.sitk }
        fh:write("return ", serialize({ props = p, like = like }))
        fh:close()
      end)
      if not okc then
        io.stderr:write(string.format("predict: case %s: preprocessing: %s\n", case.id, tostring(errc)))
      end
      proc.exit(okc and 0 or 1)
    end
    ahead[ci] = { pid = pid, base = base }
  end
  local function collect_preprocessed(ci)
    local job = ahead[ci]
    ahead[ci] = nil
    local okw, code = proc.wait(job.pid)
    if not okw then
      error(string.format("predict: case %s: preprocessing failed (child exit %d; its message is above)", cases[ci].id,
        code), 3)
    end
    local data = require("lunet.io.npy").read(job.base .. ".npy")
    local meta = dofile(job.base .. ".lua")
    os.remove(job.base .. ".npy")
    os.remove(job.base .. ".lua")
    return data, meta.props, meta.like
  end
  local tstart = core.now()
  local ok_all, err_all = pcall(function()
    for ci, case in ipairs(cases) do
      local out_base = paths.join(o.output, case.id)
      local seg_file = out_base .. ending
      if not is_done(case) then
        local imgs, prev, pre
        if npp > 0 then
          for k = ci, ci + npp do start_preprocess(k) end -- this case and the next npp
          local t0 = core.now()
          local data, p, like = collect_preprocessed(ci)
          tm.preprocess = (tm.preprocess or 0) + (core.now() - t0)
          pre = { data = data, props = p }
          imgs = { like }
        else
          imgs = read_case(case)
          prev = prev_of(case)
        end
        local function prog(done, total)
          if not progress then return end
          io.stderr:write(string.format("\rcase %d/%d [%s] %s  windows [%s] %d/%d ", ci, ncase, bar(ci - 1, ncase, 20),
            case.id, bar(done, total, 20), done, total))
          io.stderr:flush()
        end
        local kind, logits, props
        local ok, err = pcall(function()
          -- large cases stream (their segmentation comes back), the others return logits exported below
          local _
          kind, logits, _, props = run_case(models, imgs, nil, {
            plans = plans, configuration = cfg_name, dataset_json = dj, step_size = o.step_size,
            disable_tta = o.disable_tta, tta_axes = o.tta_axes, prev_seg = prev, threads = threads, progress = prog,
            use_gaussian = o.use_gaussian, timings = tm, probabilities = o.save_probabilities, stream = o.stream,
            preprocessed = pre, mirror_batch = o.mirror_batch,
          }, "auto")
        end)
        if not ok then error(string.format("predict: case %s: %s", case.id, tostring(err)), 0) end
        local function export_case()
          local t0 = core.now()
          local seg, probs = logits, nil
          if kind == "logits" then
            seg, probs = M.export(logits, props, plans, cfg_name, info, { probabilities = o.save_probabilities,
              threads = threads })
          end
          require("lunet.io.image").write_seg(seg_file, seg, imgs[1])
          if probs then
            core.npz.write(out_base .. ".npz", { probabilities = probs }, { level = 1 }) -- atomic in C
            fs.write_atomic(out_base .. ".json", require("lunet.preprocess").encode_properties(props))
            -- nnU-Net's ensemble and postprocessing read the geometry from <case>.pkl
            require("lunet.io.pickles").write_properties(out_base .. ".pkl", props)
          end
          tm.export = (tm.export or 0) + (core.now() - t0)
        end
        if workers > 0 then
          while #pending >= workers do reap(1) end
          core.finish() -- no device work in flight across the fork
          local pid = proc.fork()
          if pid == 0 then
            -- the child: host code only, no garbage collection (finalizers would release device
            -- buffers through an OpenCL runtime whose threads stayed in the parent)
            collectgarbage("stop")
            local okc, errc = pcall(export_case)
            if not okc then
              io.stderr:write(string.format("predict: case %s: export: %s\n", case.id, tostring(errc)))
            end
            proc.exit(okc and 0 or 1)
          end
          pending[#pending + 1] = { pid = pid, id = case.id }
        else
          local okx, errx = pcall(export_case)
          if not okx then error(string.format("predict: case %s: %s", case.id, tostring(errx)), 0) end
        end
        logits:free()
        collectgarbage()
      else
        skipped = skipped + 1
      end
      ids[#ids + 1] = case.id
    end
    reap(#pending)
  end)
  if not ok_all then
    -- no child left behind, no scratch left over
    for _, j in pairs(ahead) do proc.wait(j.pid) end
    while #pending > 0 do proc.wait(table.remove(pending, 1).pid) end
  end
  if scratch then fs.rmtree(scratch) end
  if not ok_all then error(err_all, 0) end
  if progress then io.stderr:write(string.format("\rcase %d/%d [%s] done%s\n", ncase, ncase, bar(1, 1, 20),
    string.rep(" ", 40))) end
  if o.verbose then
    io.stderr:write(string.format("predict: %d cases in %.2f s (preprocess %.2f s, sliding window %.2f s, export %.2f s; "
      .. "model loading before: %.2f s)\n", ncase, core.now() - tstart, tm.preprocess or 0, tm.predict or 0,
      tm.export or 0, tstart - t_load))
  end
  return ids, skipped
end

return setmetatable(M, { __call = function(_, model, image, props, opts) return M.image(model, image, props, opts) end })
