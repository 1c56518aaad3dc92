--[[ lunet.cascade: training nnU-Net's cascade (3d_lowres -> 3d_cascade_fullres).

  local cascade = require "lunet.cascade"
  cascade.prev_stage_folder(dataset, trainer, plans_name, previous_stage, configuration)
      -- nnUNet_results/<ds>/<trainer>__<plans>__<previous_stage>/predicted_next_stage/<configuration>
      -- (nnUNetTrainer.__init__: folder_with_segs_from_previous_stage)
  cascade.write_seg(path, seg)           -- <case>.npz {"seg": (Z, Y, X) u8/u16}, nnUNetDatasetNumpy.save_seg's file
  cascade.read_seg(path)                 -- -> (1, Z, Y, X) i16 (also <case>.npy)
  cascade.with_prev_seg(case, file, cache) -- a store case whose read_patch returns the previous stage's seg as a
                                         --   second seg channel (padded -1, as nnUNetDataLoader); cache: seg_cache()
  cascade.move_to_data(img, seg, labels) -- MoveSegAsOneHotToDataTransform: seg channel 2 -> one-hot data channels
  cascade.augment(img, ncl, rng, opts)   -- ApplyRandomBinaryOperatorTransform (p 0.4) then
                                         --   RemoveRandomConnectedComponentFromOneHotEncodingTransform (p 0.2)
                                         --   on the last ncl channels of each sample (nnUNetTrainer.get_training_transforms)

The morphology follows batchgeneratorsv2 (random_binary_operator.py): a ball (3-D) / disk (2-D patch) footprint built
as skimage builds it for a float radius drawn from U(1, 8), dilation as its 'same'-padded correlation (voxels outside
the patch count as background), erosion as the complement of the complement's dilation, closing and opening composed
of those. Rows are handled as runs of foreground, so the cost follows the boundary of the mask, not the patch volume.
]]
local core = require "lunet.core"
local paths = require "lunet.util.paths"

local M = {}

-- nnUNetTrainer.get_training_transforms, is_cascaded
M.p_binary_operator = 0.4
M.strel_size = { 1, 8 }
M.p_per_label = 0.5
M.p_remove_component = 0.2
M.remove_if_covers_less_than = 0.15

function M.prev_stage_folder(dataset, trainer, plans_name, previous_stage, configuration)
  return paths.join(paths.output_folder(dataset, trainer, plans_name, previous_stage), "predicted_next_stage",
    configuration)
end

-- ------------------------------------------------------------------------------------------------ files

function M.write_seg(path, seg)
  local dt = seg.dtype
  if dt ~= "u8" and dt ~= "u16" then seg = seg:astype("u8") end
  core.npz.write(path, { seg = seg }, { level = 1 })
end

--- The previous stage's segmentation of a case as (1, Z, Y, X) i16: <file>.npz ("seg"), <file>.npy or <file>.b2nd
--- (nnunetv2's default Blosc2 dataset: nnUNetDatasetBlosc2.save_seg).
function M.read_seg(path)
  local t
  if path:match("%.npy$") then t = core.npz.read_npy(path)
  elseif path:match("%.b2nd$") then
    local ok, r = pcall(core.b2nd.read, path)
    if not ok then error(("%s: cannot read the previous stage's segmentation: %s"):format(path, tostring(r)), 0) end
    t = r
  else
    local ok, arrays = pcall(core.npz.read, path)
    if not ok then error(("%s: cannot read the previous stage's segmentation: %s"):format(path, tostring(arrays)), 0) end
    t = arrays.seg
    if not t then error(path .. ": no array 'seg' (the previous stage's segmentation)", 0) end
  end
  local s = t.shape
  if #s == 4 and s[1] == 1 then s = { s[2], s[3], s[4] } end
  if #s ~= 3 then error(("%s: the previous stage's segmentation must be 3-D, has shape {%s}"):format(path,
    table.concat(s, ", ")), 0) end
  local i16 = t.dtype == "i16" and t or t:astype("i16")
  return i16:reshape({ 1, s[1], s[2], s[3] })
end

--- The file of a case in the previous stage's folder (.npz, else .npy, else nnunetv2's default .b2nd), or nil.
function M.seg_file(folder, id)
  for _, ext in ipairs({ ".npz", ".npy", ".b2nd" }) do
    local p = paths.join(folder, id .. ext)
    if paths.isfile(p) then return p end
  end
  return nil
end

--- Checks that folder holds every case of ids; errors name the folder or the first missing file.
function M.check_folder(folder, ids, cfg_name, prev_name)
  local how = ("train %s (every fold: each fold writes its validation cases there) with the same trainer and " ..
    "plans first; its final validation writes them"):format(prev_name)
  if not paths.isdir(folder) then
    error(("%s is a cascade stage, but the previous stage's predictions %s do not exist: %s"):format(cfg_name,
      folder, how), 0)
  end
  for _, id in ipairs(ids) do
    if not M.seg_file(folder, id) then
      error(("%s: the previous stage's prediction of case '%s' is missing (%s): %s"):format(cfg_name, id,
        paths.join(folder, id .. ".npz"), how), 0)
    end
  end
end

-- ------------------------------------------------------------------------------------------------ loading

--- A cache of previous-stage segmentations read on first use and kept while they fit in budget bytes (least
--- recently used dropped first): small datasets stay in memory, large ones are read again when evicted.
function M.seg_cache(budget)
  local env = tonumber(os.getenv("LUNET_CASCADE_CACHE_MB") or "")
  budget = budget or (env and env * 2 ^ 20) or 2 ^ 31
  local items, used, tick = {}, 0, 0
  local cache = {}
  function cache.get(_, file)
    tick = tick + 1
    local it = items[file]
    if it then it.used = tick; return it.t end
    local t = M.read_seg(file)
    local bytes = t:numel() * 2
    while used + bytes > budget and next(items) do
      local oldest, ou = nil, math.huge
      for f, x in pairs(items) do if x.used < ou then oldest, ou = f, x.used end end
      used = used - items[oldest].bytes
      items[oldest] = nil
    end
    items[file] = { t = t, bytes = bytes, used = tick }
    used = used + bytes
    return t
  end
  return cache
end

local function check_shape(prev, case, file)
  local ps = prev.shape
  for a = 1, 3 do
    if ps[a + 1] ~= case.shape[a] then
      error(("%s: the previous stage's segmentation has shape {%d, %d, %d}, the preprocessed case {%d, %d, %d}: " ..
        "it was predicted for other preprocessed data; rerun the previous stage's validation (--val-only)"):format(
        file, ps[2], ps[3], ps[4], case.shape[1], case.shape[2], case.shape[3]), 0)
    end
  end
end

--- A store case with the previous stage's segmentation (file, read through cache) as a second seg channel of every
--- patch, cropped with the same box and padded with -1 (nnUNetDataLoader.generate_train_batch).
function M.with_prev_seg(case, file, cache)
  cache = cache or M.seg_cache()
  local w = setmetatable({ prev_file = file }, { __index = case })
  function w.prev_seg()
    local prev = cache:get(file)
    check_shape(prev, case, file)
    return prev
  end
  function w.read_patch(_, lo, hi)
    local d, s = case:read_patch(lo, hi)
    local p = core.sampler.crop(w.prev_seg(), lo, hi, -1)
    if s.dtype ~= "i16" then s = s:astype("i16") end
    local sh = s.shape
    local both = core.from_bytes(s:bytes() .. p:bytes(), { sh[1] + 1, sh[2], sh[3], sh[4] }, "i16")
    return d, both
  end
  function w.close() case:close() end
  return w
end

--- MoveSegAsOneHotToDataTransform(source_channel_idx=1): img (B, C, Z, Y, X) f32, seg (B, 2, Z, Y, X) i16 ->
--- img (B, C + #labels, ...) with the one-hot of seg channel 2 (the same encoding inference appends), seg (B, 1, ...).
function M.move_to_data(img, seg, labels)
  local B, C = img.shape[1], img.shape[2]
  local sp = { img.shape[3], img.shape[4], img.shape[5] }
  local v = sp[1] * sp[2] * sp[3]
  local ib, sb = img:bytes(), seg:bytes()
  local Cs = seg.shape[2]
  local outs, segs = {}, {}
  for b = 0, B - 1 do
    local d = core.from_bytes(ib:sub(b * C * v * 4 + 1, (b + 1) * C * v * 4), { C, sp[1], sp[2], sp[3] }, "f32")
    local off = (b * Cs) * v * 2
    local prev = core.from_bytes(sb:sub(off + v * 2 + 1, off + 2 * v * 2), { 1, sp[1], sp[2], sp[3] }, "i16")
    outs[b + 1] = core.infer.onehot_append(d, prev, labels):bytes()
    segs[b + 1] = sb:sub(off + 1, off + v * 2)
  end
  local n = #labels
  return core.from_bytes(table.concat(outs), { B, C + n, sp[1], sp[2], sp[3] }, "f32"),
    core.from_bytes(table.concat(segs), { B, 1, sp[1], sp[2], sp[3] }, "i16")
end

-- ------------------------------------------------------------------------------------------------ footprints

--- skimage.morphology.ball(radius) (float radius, strict): np.mgrid[-r:r:n*1j] with n = 2r + 1, so int(n) points
--- from -r to r; footprint s = X^2 + Y^2 + Z^2 <= r^2. 2-D: skimage's disk, np.arange(-r, r + 1).
--- Returns the list of runs {dz, dy, a, b}: offsets (dz, dy, a..b) where fp is set, offsets relative to the anchor
--- of a 'same'-padded correlation (index - (size - 1) // 2), as batchgeneratorsv2's fft_conv places the kernel.
function M.footprint(radius, ndim)
  local coords
  if ndim == 3 then
    local num = math.floor(2 * radius + 1)
    local step = (radius - (-radius)) / (num - 1)
    coords = {}
    for k = 0, num - 1 do coords[k + 1] = k * step + (-radius) end
  else
    coords = {}
    local k = 0
    while -radius + k < radius + 1 do coords[k + 1] = -radius + k; k = k + 1 end
  end
  local n = #coords
  local anchor = (n - 1) // 2
  local r2 = radius * radius
  local runs = {}
  local zs = ndim == 3 and n or 1
  for kz = 1, zs do
    for ky = 1, n do
      local a, b
      for kx = 1, n do
        local x, y = coords[kx], coords[ky]
        local s = x * x + y * y
        if ndim == 3 then s = s + coords[kz] * coords[kz] end
        if s <= r2 then
          if not a then a = kx end
          b = kx
        end
      end
      if a then
        runs[#runs + 1] = { ndim == 3 and (kz - 1 - anchor) or 0, ky - 1 - anchor, a - 1 - anchor, b - 1 - anchor }
      end
    end
  end
  return runs
end

-- ------------------------------------------------------------------------------------------------ run-length masks
-- A mask of shape {Z, Y, X} as rows[(z * Y + y) + 1] = {s1, e1, s2, e2, ...} (inclusive, sorted), nil when empty.

local function to_rows(flat, off, sp)
  local Z, Y, X = sp[1], sp[2], sp[3]
  local rows = {}
  for r = 0, Z * Y - 1 do
    local base = off + r * X
    local row, s
    for x = 1, X do
      local on = flat[base + x] ~= 0
      if on and not s then s = x - 1
      elseif not on and s then
        row = row or {}
        row[#row + 1] = s; row[#row + 1] = x - 2
        s = nil
      end
    end
    if s then row = row or {}; row[#row + 1] = s; row[#row + 1] = X - 1 end
    rows[r + 1] = row
  end
  return rows
end

local function complement(rows, sp)
  local X = sp[2 + 1]
  local out = {}
  for r = 1, sp[1] * sp[2] do
    local row, o, x = rows[r], {}, 0
    if row then
      for i = 1, #row, 2 do
        if row[i] > x then o[#o + 1] = x; o[#o + 1] = row[i] - 1 end
        x = row[i + 1] + 1
      end
    end
    if x <= X - 1 then o[#o + 1] = x; o[#o + 1] = X - 1 end
    out[r] = #o > 0 and o or nil
  end
  return out
end

-- union of intervals {s, e} (flat list) -> sorted, merged run list
local function merge(iv)
  local n = #iv // 2
  if n == 0 then return nil end
  local idx = {}
  for i = 1, n do idx[i] = i end
  table.sort(idx, function(p, q) return iv[2 * p - 1] < iv[2 * q - 1] end)
  local out = {}
  for _, i in ipairs(idx) do
    local s, e = iv[2 * i - 1], iv[2 * i]
    local m = #out
    if m > 0 and s <= out[m] + 1 then
      if e > out[m] then out[m] = e end
    else
      out[m + 1] = s; out[m + 2] = e
    end
  end
  return out
end

--- Dilation: p is set when the mask is set at p + o for an offset o of the footprint (inside the patch).
local function dilate(rows, sp, fp)
  local Z, Y, X = sp[1], sp[2], sp[3]
  local out = {}
  for z = 0, Z - 1 do
    for y = 0, Y - 1 do
      local iv = {}
      for _, f in ipairs(fp) do
        local sz, sy = z + f[1], y + f[2]
        if sz >= 0 and sz < Z and sy >= 0 and sy < Y then
          local row = rows[sz * Y + sy + 1]
          if row then
            local a, b = f[3], f[4]
            for i = 1, #row, 2 do
              local s, e = row[i] - b, row[i + 1] - a
              if s < 0 then s = 0 end
              if e > X - 1 then e = X - 1 end
              if s <= e then iv[#iv + 1] = s; iv[#iv + 1] = e end
            end
          end
        end
      end
      out[z * Y + y + 1] = merge(iv)
    end
  end
  return out
end

local function erode(rows, sp, fp) return complement(dilate(complement(rows, sp), sp, fp), sp) end

M.operators = {
  function(r, sp, fp) return dilate(r, sp, fp) end,
  function(r, sp, fp) return erode(r, sp, fp) end,
  function(r, sp, fp) return erode(dilate(r, sp, fp), sp, fp) end, -- closing
  function(r, sp, fp) return dilate(erode(r, sp, fp), sp, fp) end, -- opening
}
M.operator_names = { "dilation", "erosion", "closing", "opening" }

local function rows_to_flat(rows, sp)
  local X = sp[3]
  local out = {}
  local n = sp[1] * sp[2] * X
  for i = 1, n do out[i] = 0 end
  for r = 1, sp[1] * sp[2] do
    local row = rows[r]
    if row then
      local base = (r - 1) * X
      for i = 1, #row, 2 do for x = row[i], row[i + 1] do out[base + x + 1] = 1 end end
    end
  end
  return out
end

--- One morphological operation on a binary mask {Z, Y, X} given as a flat 0/1 list: returns the result list.
--- op: 1 dilation, 2 erosion, 3 closing, 4 opening; radius: the footprint's float radius; ndim 2 or 3.
--- M.binary_op runs in C (lunet.core.morph.op) with the same footprint runs; M.binary_op_lua is the run-length
--- Lua reference it is checked against (spec/cascade_morph_spec.lua).
function M.binary_op_lua(flat, sp, op, radius, ndim)
  local fp = M.footprint(radius, ndim)
  return rows_to_flat(M.operators[op](to_rows(flat, 0, sp), sp, fp), sp)
end

function M.binary_op(flat, sp, op, radius, ndim)
  return core.morph.op(flat, sp, op, M.footprint(radius, ndim))
end

-- ------------------------------------------------------------------------------------------------ augmentation

local function shuffled(list, rng)
  local t = {}
  for i, v in ipairs(list) do t[i] = v end
  for i = #t, 2, -1 do
    local j = rng:int(1, i)
    t[i], t[j] = t[j], t[i]
  end
  return t
end

--- The random binary operator and the connected-component removal on one sample: ch is a list of the one-hot
--- channels' flat 0/1 lists (modified in place), sp its spatial shape; rng draws. Returns the draws (for specs).
function M.augment_sample(ch, sp, rng, ndim)
  local rec = { ops = {}, removed = {} }
  local n = #ch
  local idx = {}
  for i = 1, n do idx[i] = i end
  if rng:double() < M.p_binary_operator then
    local order = shuffled(idx, rng)
    local apply = {}
    for _, c in ipairs(order) do if rng:double() < M.p_per_label then apply[#apply + 1] = c end end
    for _, c in ipairs(apply) do
      local op = rng:int(1, #M.operators)
      local radius = rng:uniform(M.strel_size[1], M.strel_size[2])
      local before = ch[c]
      local after = M.binary_op(before, sp, op, radius, ndim)
      -- voxels the operation added to this channel are taken from every other channel (one-hot stays exclusive)
      for oc = 1, n do
        if oc ~= c then
          local o = ch[oc]
          for i = 1, #after do if after[i] ~= 0 and before[i] == 0 then o[i] = 0 end end
        end
      end
      ch[c] = after
      rec.ops[#rec.ops + 1] = { channel = c, op = M.operator_names[op], radius = radius }
    end
  end
  if rng:double() < M.p_remove_component then
    local order = shuffled(idx, rng)
    local apply = {}
    for _, c in ipairs(order) do if rng:double() < M.p_per_label then apply[#apply + 1] = c end end
    local nvox = sp[1] * sp[2] * sp[3]
    for _, c in ipairs(apply) do
      local m = ch[c]
      local any = false
      for i = 1, #m do if m[i] ~= 0 then any = true; break end end
      if any then
        local mask = core.tensor(m, { shape = { sp[1], sp[2], sp[3] }, dtype = "u8" })
        local lab, count, sizes = core.eval.cc_label(mask, { threads = 1 })
        local valid = {}
        for k = 1, count do
          if sizes[k] < nvox * M.remove_if_covers_less_than then valid[#valid + 1] = k end
        end
        if #valid > 0 then
          local pick = valid[rng:int(1, #valid)]
          core.morph.clear_label(m, lab:flat(), pick)
          rec.removed[#rec.removed + 1] = { channel = c, size = sizes[pick] }
        end
      end
    end
  end
  return rec
end

--- The cascade augmentations on a batch img (B, C, Z, Y, X) f32 whose last ncl channels are the one-hot
--- previous-stage segmentation; rng_of(b) gives sample b's (0-based) generator. Returns the new batch and the draws.
function M.augment(img, ncl, rng_of, ndim)
  local B, C = img.shape[1], img.shape[2]
  local sp = { img.shape[3], img.shape[4], img.shape[5] }
  local v = sp[1] * sp[2] * sp[3]
  local raw = img:bytes()
  local parts, recs, changed = {}, {}, false
  for b = 0, B - 1 do
    local rng = rng_of(b)
    local first = (b * C + C - ncl) * v * 4
    local ch = {}
    -- the draws decide whether anything happens; read the channels only then
    local probe = rng:clone()
    local u1 = probe:double()
    local touched = u1 < M.p_binary_operator
    if not touched then
      -- the component removal's draw follows the (unused) operator draw
      touched = probe:double() < M.p_remove_component
    end
    if touched then
      for k = 1, ncl do
        ch[k] = core.from_bytes(raw:sub(first + (k - 1) * v * 4 + 1, first + k * v * 4), { v }, "f32"):flat()
      end
      recs[b + 1] = M.augment_sample(ch, sp, rng, ndim)
      local t = {}
      for k = 1, ncl do t[k] = core.tensor(ch[k], { shape = { v }, dtype = "f32" }):bytes() end
      parts[#parts + 1] = raw:sub(b * C * v * 4 + 1, first)
      parts[#parts + 1] = table.concat(t)
      changed = true
    else
      recs[b + 1] = { ops = {}, removed = {} }
      parts[#parts + 1] = raw:sub(b * C * v * 4 + 1, (b + 1) * C * v * 4)
    end
  end
  if not changed then return img, recs end
  return core.from_bytes(table.concat(parts), img.shape, "f32"), recs
end

return M
