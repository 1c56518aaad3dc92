--[==[ lunet.io.image: image files as nnU-Net's readers/writers see them.

  image.read(path [, opts]) -> img
    img.data      Tensor (C, Z, Y, X), host, the file's own dtype (NIfTI scl_slope/inter -> f32)
    img.spacing   {z, y, x}: nnU-Net's spacing, array-axis order (2-D files: {999*max, sy, sx})
    img.sitk      {spacing={x,y,z}, origin={...}, direction={...}}: SimpleITK's view ("sitk_stuff");
                  2-D files have 2 spacing/origin values and 4 direction values, as SimpleITK gives
                  (absent for TIFF/PNG)
    img.file      path;  img.reader  the nnU-Net reader class whose behaviour was followed
    opts.reader   force a reader: "SimpleITKIO", "NibabelIO", "Tiff3DIO", "NaturalImage2DIO"
    opts.sidecar  Tiff3DIO: explicit spacing json path
  image.write(path, tensor, like [, opts])   like = an img from read (its geometry is written back
                  exactly); tensor (C,Z,Y,X) or (Z,Y,X). Tiff3DIO also writes the `<case>.json`
                  sidecar with the spacing, as nnU-Net does.
  image.write_seg(path, seg, like)   nnU-Net's write_seg: seg cast to u8 (max < 255) or u16, then
                  written with like's geometry (TIFF: zlib + sidecar, PNG: first channel)
  image.reader_for(file_ending [, dataset_json [, example_path]]) -> reader {name, read, write}
                  nnU-Net's reader_writer_registry choice (overwrite_image_reader_writer first).
]==]
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

M.readers = {}

local function lower(s) return s:lower() end

local function ends_with(s, suffix) return #s >= #suffix and lower(s:sub(-#suffix)) == lower(suffix) end

local function fail(path, msg, level) error(path .. ": " .. msg, (level or 1) + 1) end

local function cread(path)
  local ok, r = pcall(core.image.read, path)
  if not ok then error(tostring(r), 0) end
  return r
end

local function copy(t, n)
  local o = {}
  for i = 1, n or #t do o[i] = t[i] end
  return o
end

local function ending_of(path)
  for _, e in ipairs({ ".nii.gz", ".nii", ".tiff", ".tif", ".png", ".bmp", ".nrrd", ".mha", ".gipl" }) do
    if ends_with(path, e) then return e end
  end
  return path:match("(%.[^./]+)$") or ""
end

--- SimpleITK's view of a core result: 2-D files keep 2 values per field as SimpleITK does.
local function sitk_stuff(r)
  if r.sdim == 2 then
    local d = r.direction
    return { spacing = { r.spacing[1], r.spacing[2] }, origin = { r.origin[1], r.origin[2] },
             direction = { d[1], d[2], d[4], d[5] } }
  end
  return { spacing = copy(r.spacing, 3), origin = copy(r.origin, 3), direction = copy(r.direction, 9) }
end

--- nnU-Net's spacing (array-axis order) from SimpleITK's.
local function nnunet_spacing(sitk)
  local s = sitk.spacing
  if #s == 2 then
    return { 999 * math.max(math.abs(s[1]), math.abs(s[2])), math.abs(s[2]), math.abs(s[1]) }
  end
  return { math.abs(s[3]), math.abs(s[2]), math.abs(s[1]) }
end

--- Geometry table for core.image.write from an img's sitk_stuff (2-D expanded to 3-D).
local function core_geom(sitk)
  if not sitk then return nil end
  local s, o, d = sitk.spacing, sitk.origin, sitk.direction
  if #s == 2 then
    return { spacing = { s[1], s[2], 1 }, origin = { o[1], o[2], 0 },
             direction = { d[1], d[2], 0, d[3], d[4], 0, 0, 0, 1 }, sdim = 2 }
  end
  return { spacing = s, origin = o, direction = d, sdim = 3 }
end

-- ------------------------------------------------------------------------------------------- NIfTI
local function nifti_read(path, name)
  local r = cread(path)
  local sitk = sitk_stuff(r)
  -- header_spacing: the header's pixdim (x, y, z) before the reader's repairs (0/NaN/Inf -> 1, negative -> abs),
  -- for `lunet verify`
  return { data = r.data, spacing = nnunet_spacing(sitk), sitk = sitk, file = path, reader = name,
           header_spacing = r.header_spacing and copy(r.header_spacing, r.sdim == 2 and 2 or 3) or nil }
end

local function nifti_write(path, t, like)
  local geom = like and core_geom(like.sitk)
  if like and not geom then fail(path, "the reference image has no SimpleITK geometry (sitk) to write", 3) end
  core.image.write(path, t, geom)
end

M.readers.SimpleITKIO = {
  name = "SimpleITKIO",
  endings = { ".nii.gz", ".nrrd", ".mha", ".gipl" },
  read = function(path) return nifti_read(path, "SimpleITKIO") end,
  write = nifti_write,
}
-- nnU-Net's NibabelIO handles .nii; its geometry equals SimpleITK's for valid files, so the same
-- reader is used (properties keep sitk_stuff; nibabel_stuff is not produced).
M.readers.NibabelIO = {
  name = "NibabelIO",
  endings = { ".nii", ".nii.gz" },
  read = function(path) return nifti_read(path, "NibabelIO") end,
  write = nifti_write,
}

-- ------------------------------------------------------------------------------------------- TIFF
local function sidecar_candidates(path, ending)
  local base = path:sub(1, #path - #ending)
  local out = {}
  local case = base:match("^(.*)_%d%d%d%d$")
  if case then out[#out + 1] = case .. ".json" end
  out[#out + 1] = base .. ".json"
  return out
end

local function file_exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

local function read_sidecar(path, jpath)
  local ok, j = pcall(json.read, jpath)
  if not ok then fail(path, "spacing sidecar " .. jpath .. " is not valid json: " .. tostring(j), 4) end
  local sp = type(j) == "table" and j.spacing
  if type(sp) ~= "table" or #sp ~= 3 then
    fail(path, "spacing sidecar " .. jpath .. " must contain {\"spacing\": [a, b, c]} with 3 numbers", 4)
  end
  for i = 1, 3 do
    if type(sp[i]) ~= "number" or not (sp[i] > 0) then
      fail(path, "spacing sidecar " .. jpath .. ": spacing[" .. i .. "] is not a positive number", 4)
    end
  end
  return { sp[1], sp[2], sp[3] }, jpath
end

M.readers.Tiff3DIO = {
  name = "Tiff3DIO",
  endings = { ".tif", ".tiff" },
  read = function(path, opts, raw)
    local r = raw or cread(path)
    local sh = r.data.shape
    if sh[1] ~= 1 then
      fail(path, string.format("Tiff3DIO reads one-sample (grey) volumes; this file has %d samples per pixel", sh[1]), 2)
    end
    local spacing, from = { 1, 1, 1 }, nil
    local ending = ending_of(path)
    if opts and opts.sidecar then
      spacing, from = read_sidecar(path, opts.sidecar)
    else
      for _, c in ipairs(sidecar_candidates(path, ending)) do
        if file_exists(c) then
          spacing, from = read_sidecar(path, c)
          break
        end
      end
    end
    return { data = r.data, spacing = spacing, spacing_file = from, file = path, reader = "Tiff3DIO" }
  end,
  write = function(path, t, like)
    core.image.write(path, t, nil)
    local ending = ending_of(path)
    local jpath = path:sub(1, #path - #ending) .. ".json"
    local sp = (like and like.spacing) or { 1, 1, 1 }
    json.write(jpath, { spacing = json.array({ sp[1], sp[2], sp[3] }) })
  end,
}

-- ------------------------------------------------------------------------------------------- 2-D natural
M.readers.NaturalImage2DIO = {
  name = "NaturalImage2DIO",
  endings = { ".png", ".bmp", ".tif" },
  read = function(path, _, raw)
    local r = raw or cread(path)
    local sh = r.data.shape
    if sh[2] ~= 1 then
      fail(path, string.format("NaturalImage2DIO reads 2-D images; this file has %d pages", sh[2]), 2)
    end
    if not (sh[1] == 1 or sh[1] == 3 or sh[1] == 4) then
      fail(path, string.format("NaturalImage2DIO reads grey, RGB or RGBA images; this file has %d channels", sh[1]), 2)
    end
    return { data = r.data, spacing = { 999, 1, 1 }, file = path, reader = "NaturalImage2DIO" }
  end,
  write = function(path, t) core.image.write(path, t, nil) end,
}

--- The reader nnU-Net would pick for a file ending (and dataset.json's overwrite_image_reader_writer).
--- With example_path, readers that cannot read it are skipped, as nnU-Net's registry does.
function M.reader_for(file_ending, dj, example_path)
  local over = dj and dj.overwrite_image_reader_writer
  if type(over) == "string" and over ~= "None" then
    local r = M.readers[over]
    if not r then error("overwrite_image_reader_writer: unknown reader '" .. over .. "' (known: SimpleITKIO, "
      .. "NibabelIO, Tiff3DIO, NaturalImage2DIO)", 2) end
    return r
  end
  local e = lower(file_ending or "")
  if not example_path and (e == ".tif" or e == ".tiff") then
    -- without an example nnU-Net's choice is unknown: decide per file (1 page 2-D, else Tiff3DIO)
    return { name = "Tiff3DIO", endings = { ".tif", ".tiff" }, read = function(p, o) return M.read(p, o) end,
             write = function(p, t, like) return M.write(p, t, like) end }
  end
  for _, name in ipairs({ "NaturalImage2DIO", "SimpleITKIO", "Tiff3DIO", "NibabelIO" }) do
    local r = M.readers[name]
    for _, re in ipairs(r.endings) do
      if re == e then
        if not example_path or pcall(r.read, example_path) then return r end
        break
      end
    end
  end
  error("no image reader for file ending '" .. tostring(file_ending) .. "'" ..
    (example_path and (" that can read " .. example_path) or ""), 2)
end

--- Reader for one file, from its ending (TIFF: one page -> NaturalImage2DIO, more -> Tiff3DIO,
--- as nnU-Net's registry ends up choosing).
local function reader_for_path(path, opts)
  if opts and opts.reader then
    local r = M.readers[opts.reader]
    if not r then fail(path, "unknown reader '" .. tostring(opts.reader) .. "'", 3) end
    return r
  end
  local e = lower(ending_of(path))
  if e == ".nii.gz" then return M.readers.SimpleITKIO end
  if e == ".nii" then return M.readers.NibabelIO end
  if e == ".png" or e == ".bmp" then return M.readers.NaturalImage2DIO end
  if e == ".tif" or e == ".tiff" then return nil, "tiff" end
  fail(path, "unsupported image file ending (expected .nii, .nii.gz, .tif, .tiff, .png)", 3)
end

function M.read(path, opts)
  if type(path) ~= "string" then error("image.read: expected a path", 2) end
  local r, kind = reader_for_path(path, opts)
  if r then return r.read(path, opts) end
  if kind == "tiff" then
    local raw = cread(path)
    if raw.data.shape[2] == 1 and raw.sdim == 2 then return M.readers.NaturalImage2DIO.read(path, opts, raw) end
    return M.readers.Tiff3DIO.read(path, opts, raw)
  end
end

function M.write(path, t, like, opts)
  if type(path) ~= "string" then error("image.write: expected a path", 2) end
  local r
  if opts and opts.reader then r = M.readers[opts.reader]
  elseif like and like.reader and M.readers[like.reader] then r = M.readers[like.reader]
  else r = reader_for_path(path, nil) end
  local e = lower(ending_of(path))
  if not r then r = (e == ".tif" or e == ".tiff") and M.readers.Tiff3DIO or M.readers.NaturalImage2DIO end
  -- a reader chosen from `like` must still match the output's ending
  if e == ".nii" or e == ".nii.gz" then
    if r ~= M.readers.SimpleITKIO and r ~= M.readers.NibabelIO then r = M.readers.SimpleITKIO end
  elseif e == ".png" then r = M.readers.NaturalImage2DIO end
  local ok, err = pcall(r.write, path, t, like)
  if not ok then error(tostring(err), 2) end
end

function M.write_seg(path, seg, like, opts)
  local ok, cast = pcall(core.image.seg_cast, seg)
  if not ok then error(path .. ": " .. tostring(cast), 2) end
  local sh = cast.shape
  if #sh == 3 then cast = cast:reshape({ 1, sh[1], sh[2], sh[3] }) end
  local wok, err = pcall(M.write, path, cast, like, opts)
  if not wok then error(tostring(err), 2) end
end

return setmetatable(M, { __call = function(_, ...) return M.read(...) end })
