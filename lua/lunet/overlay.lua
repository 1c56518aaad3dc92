--[==[ lunet.overlay: nnU-Net's nnUNetv2_plot_overlay_pngs (utilities/overlay_plots.py): for each training case a PNG
of one slice, image in grey, segmentation overlaid in colours, to check that images and labels line up.

  local overlay = require "lunet.overlay"
  overlay.select_slice(seg_tensor) -> 0-based index along the first spatial axis (nnU-Net's select_slice_to_plot2)
  overlay.generate(img_values, seg_values, Y, X [, intensity]) -> RGBA bytes (nnU-Net's generate_overlay)
  overlay.plot(image_tensor, seg_tensor, png_path [, intensity])   one case: image (1|Z, Y, X)-like (C, Z, Y, X)
  overlay.from_raw(dataset, out_dir, opts)           nnUNet_raw/<Dataset>/imagesTr + labelsTr (--use_raw)
  overlay.from_preprocessed(dataset, out_dir, opts)  the preprocessed cases of a configuration (nnU-Net's default)
      opts.channel (0), opts.intensity (0.6), opts.plans ("nnUNetPlans"), opts.configuration (3d_fullres if
      planned, else 2d), opts.log(line)
  -> list of PNGs written (<case>.png, atomic)

As nnU-Net: the slice is the one whose mean over foreground classes of "share of the class in this slice" is highest
(including nnU-Net's normalisation quirk: each class's counts are divided by the running total of the table, not by
the class's own total), first one on ties, 0 without foreground. Colours come from nnU-Net's colour cycle indexed by
the rank of the value among the slice's unique values (so background takes black, the first colour). The image is
scaled to [0, 255], the colours added with weight `intensity`, and the sum scaled to [0, 255] again, in float32 as
numpy does, then truncated to uint8; written as 8-bit RGBA (alpha 255), as matplotlib's imsave writes it.
]==]
local core = require "lunet.core"
local paths = require "lunet.util.paths"
local json = require "lunet.util.json"

local M = {}

M.color_cycle = { "000000", "4363d8", "f58231", "3cb44b", "e6194B", "911eb4", "ffe119", "bfef45", "42d4f4",
  "f032e6", "000075", "9A6324", "808000", "800000", "469990" }

local function f32(x) return (string.unpack("f", string.pack("f", x))) end

-- numpy's pairwise sum (the reduction np.mean uses along a contiguous axis), so ties break as nnU-Net's do
local function pairwise_sum(a, lo, n)
  if n < 8 then
    local s = 0.0
    for i = lo, lo + n - 1 do s = s + a[i] end
    return s
  elseif n <= 128 then
    local r = {}
    for j = 0, 7 do r[j] = a[lo + j] end
    local i = 8
    while i < n - n % 8 do
      for j = 0, 7 do r[j] = r[j] + a[lo + i + j] end
      i = i + 8
    end
    local s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    for k = i, n - 1 do s = s + a[lo + k] end
    return s
  end
  local n2 = n // 2
  n2 = n2 - n2 % 8
  return pairwise_sum(a, lo, n2) + pairwise_sum(a, lo + n2, n - n2)
end

-- Calls fn(index0, value) for every element of a host tensor, decoding its bytes in blocks (no whole-volume table).
local FMT = { u8 = "B", i8 = "b", i16 = "i2", u16 = "I2", i32 = "i4", u32 = "I4", i64 = "i8", f32 = "f", f64 = "d" }
local function each(t, fn)
  local fmt = FMT[t.dtype]
  if not fmt then t = t:astype("f32"); fmt = "f" end
  local s = t:bytes()
  local size = string.packsize(fmt)
  local n = #s // size
  local B = 256
  local block = string.rep(fmt, B)
  local pos, idx = 1, 0
  while idx < n do
    local k = math.min(B, n - idx)
    local vals = table.pack(string.unpack(k == B and block or string.rep(fmt, k), s, pos))
    for j = 1, k do fn(idx + j - 1, vals[j]) end
    pos = vals[k + 1]
    idx = idx + k
  end
end

local function spatial(t)
  local sh = t.shape
  if #sh == 4 then return sh[2], sh[3], sh[4] end
  if #sh == 3 then return sh[1], sh[2], sh[3] end
  if #sh == 2 then return 1, sh[1], sh[2] end
  error("overlay: expected a (C, Z, Y, X), (Z, Y, X) or (Y, X) tensor", 3)
end

function M.select_slice(seg)
  local Z, Y, X = spatial(seg)
  local plane = Y * X
  local counts, classes = {}, {} -- counts[class][z]
  each(seg, function(i, v)
    if v > 0 then
      local c = counts[v]
      if not c then c = {}; counts[v] = c; classes[#classes + 1] = v end
      local z = i // plane
      if z < Z then c[z] = (c[z] or 0) + 1 end
    end
  end)
  if #classes == 0 then return 0 end -- nnU-Net: argmax over all-NaN means gives 0
  table.sort(classes)
  local n = #classes
  local table_ = {} -- row-major (Z, n), as nnU-Net's fg_per_slice
  for z = 0, Z - 1 do for j = 1, n do table_[z * n + j] = 0.0 end end
  local total = 0.0 -- fg_per_slice.sum() before column j is divided: earlier columns (normalised) + this one raw
  for j, c in ipairs(classes) do
    local col = 0.0
    for z = 0, Z - 1 do
      local v = (counts[c][z] or 0) + 0.0
      table_[z * n + j] = v
      col = col + v
    end
    local den = total + col
    local s = 0.0
    for z = 0, Z - 1 do
      table_[z * n + j] = table_[z * n + j] / den
      s = s + table_[z * n + j]
    end
    total = total + s
  end
  local best, best_z = -math.huge, 0
  for z = 0, Z - 1 do
    local m = pairwise_sum(table_, z * n + 1, n) / n
    if m > best then best, best_z = m, z end
  end
  return best_z
end

local function hex_rgb(h)
  return tonumber(h:sub(1, 2), 16), tonumber(h:sub(3, 4), 16), tonumber(h:sub(5, 6), 16)
end

--- img, seg: Lua arrays (1-based, Y*X row-major) of one slice; returns the RGBA bytes.
function M.generate(img, seg, Y, X, intensity)
  intensity = intensity or 0.6
  local n = Y * X
  local mn, mx = math.huge, -math.huge
  for i = 1, n do
    local v = f32(img[i])
    img[i] = v
    if v < mn then mn = v end
  end
  local r, g, b = {}, {}, {}
  for i = 1, n do
    local v = f32(img[i] - mn)
    r[i] = v
    if v > mx then mx = v end
  end
  for i = 1, n do
    local v = f32(f32(r[i] / mx) * 255)
    r[i], g[i], b[i] = v, v, v
  end
  local uniq, seen = {}, {}
  for i = 1, n do
    local s = seg[i]
    if not seen[s] then seen[s] = true; uniq[#uniq + 1] = s end
  end
  table.sort(uniq)
  local add = {}
  for k, lb in ipairs(uniq) do
    -- nnU-Net indexes its 15 colours by rank (and fails past them); Lunet cycles
    local cr, cg, cb = hex_rgb(M.color_cycle[(k - 1) % #M.color_cycle + 1])
    add[lb] = { intensity * cr, intensity * cg, intensity * cb }
  end
  local m2 = -math.huge
  for i = 1, n do
    local a = add[seg[i]]
    r[i], g[i], b[i] = f32(r[i] + a[1]), f32(g[i] + a[2]), f32(b[i] + a[3])
    m2 = math.max(m2, r[i], g[i], b[i])
  end
  local out = {}
  local function u8(v)
    v = f32(f32(v / m2) * 255)
    if v ~= v then return 0 end -- a constant image: nnU-Net divides 0 by 0
    return math.floor(v)
  end
  local parts, CH = {}, 1024
  for i = 1, n, CH do
    local k = 0
    for j = i, math.min(n, i + CH - 1) do
      out[k + 1], out[k + 2], out[k + 3], out[k + 4] = u8(r[j]), u8(g[j]), u8(b[j]), 255
      k = k + 4
    end
    parts[#parts + 1] = string.char(table.unpack(out, 1, k))
  end
  return table.concat(parts)
end

-- values of slice z (0-based) of channel ch (0-based) of a tensor, as a Lua array
local function slice_values(t, z, ch)
  local Z, Y, X = spatial(t)
  local plane = Y * X
  local lo = (ch * Z + z) * plane
  local hi = lo + plane
  local out = {}
  each(t, function(i, v) if i >= lo and i < hi then out[i - lo + 1] = v end end)
  return out
end

--- image: (C, Z, Y, X) tensor whose channel `channel` (0-based) is plotted; seg: (1, Z, Y, X).
function M.plot(image, seg, png_path, opts)
  opts = opts or {}
  local Z, Y, X = spatial(image)
  local sz, sy, sx = spatial(seg)
  if Z ~= sz or Y ~= sy or X ~= sx then
    error(string.format("%s: image and segmentation do not have the same shape: (%d, %d, %d), (%d, %d, %d)",
      png_path, Z, Y, X, sz, sy, sx), 2)
  end
  local z = M.select_slice(seg)
  local segv = slice_values(seg, z, 0)
  for i = 1, #segv do if segv[i] < 0 then segv[i] = 0 end end -- preprocessed seg: -1 outside the crop
  local rgba = M.generate(slice_values(image, z, opts.channel or 0), segv, Y, X, opts.intensity)
  require("lunet.io.image").write(png_path, M.planar(rgba, Y, X))
  return z
end

--- interleaved RGBA bytes -> (4, 1, Y, X) u8 tensor (the PNG writer takes channels first)
function M.planar(rgba, Y, X)
  local n = Y * X
  local parts = {}
  for c = 1, 4 do
    local ch, CH = {}, 1024
    for i = 0, n - 1, CH do
      local vals = {}
      for j = i, math.min(n - 1, i + CH - 1) do vals[#vals + 1] = rgba:byte(j * 4 + c) end
      ch[#ch + 1] = string.char(table.unpack(vals))
    end
    parts[c] = table.concat(ch)
  end
  return core.from_bytes(table.concat(parts), { 4, 1, Y, X }, "u8")
end

function M.from_raw(dataset, out_dir, opts)
  opts = opts or {}
  local image = require "lunet.io.image"
  local ds = require("lunet.dataset").open(dataset)
  local ch = opts.channel or 0
  paths.mkdirs(out_dir)
  local written = {}
  for _, c in ipairs(ds.cases) do
    local f = c.images[ch + 1]
    if not f then error(string.format("%s: case %s has no channel %d", ds.path or ds.name, c.id, ch), 2) end
    if opts.log then opts.log(c.id) end
    local img = image.read(f).data:astype("f32") -- nnU-Net's readers give float32
    local seg = image.read(c.label).data
    local out = paths.join(out_dir, c.id .. ".png")
    local ok, err = pcall(M.plot, img, seg, out, { intensity = opts.intensity })
    if not ok then error(tostring(err), 2) end
    written[#written + 1] = out
  end
  return written
end

function M.from_preprocessed(dataset, out_dir, opts)
  opts = opts or {}
  local store = require "lunet.io.store"
  local name = paths.dataset_name(dataset)
  local folder = paths.join(paths.preprocessed(), name)
  if not paths.isdir(folder) then error(folder .. ": run preprocessing for this dataset first", 2) end
  local plans_name = opts.plans or "nnUNetPlans"
  local pf = paths.join(folder, plans_name .. ".json")
  if not paths.isfile(pf) then error(pf .. ": plans not found", 2) end
  local plans = json.read(pf)
  local cfg = opts.configuration or (plans.configurations["3d_fullres"] and "3d_fullres" or "2d")
  local conf = require("lunet.planner").configuration(plans, cfg)
  local dir = paths.case_store_dir(folder, conf.data_identifier)
  if not paths.isdir(dir) then
    error(string.format("%s: no preprocessed data for configuration %s of plans %s (%s); run preprocessing for it",
      dir, cfg, plans_name, name), 2)
  end
  local ch = opts.channel or 0
  paths.mkdirs(out_dir)
  local ids = {}
  for _, f in ipairs(paths.listdir(dir)) do
    local id = f:match("^(.*)%.lcs$")
    if id then ids[#ids + 1] = id end
  end
  table.sort(ids)
  local written = {}
  for _, id in ipairs(ids) do
    if opts.log then opts.log(id) end
    local c = store.open(paths.join(dir, id .. ".lcs"), { no_locations = true })
    if ch >= c.channels then
      c:close()
      error(string.format("%s: this dataset has channels 0 to %d only", paths.join(dir, id .. ".lcs"), c.channels - 1), 2)
    end
    local data, seg = c:read_patch({ 0, 0, 0 }, c.shape)
    c:close()
    local out = paths.join(out_dir, id .. ".png")
    local ok, err = pcall(M.plot, data, seg, out, { channel = ch, intensity = opts.intensity })
    if not ok then error(tostring(err), 2) end
    written[#written + 1] = out
  end
  return written
end

return M
