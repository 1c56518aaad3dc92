-- lunet.io.image: readers against oracle values (SimpleITK / nibabel / tifffile / skimage, recorded by
-- scripts/fixtures/make_image_fixtures.py into spec/fixtures/image/expected.json), exact round trips
-- for every dtype and format, and a clear error naming the file for every bad input.
local image = require "lunet.io.image"
local cjson = require "cjson"

local FIX = "spec/fixtures/image/"
local expected = cjson.decode(assert(io.open(FIX .. "expected.json")):read("a"))

local TMP = os.tmpname()
os.remove(TMP)
os.execute("mkdir -p " .. TMP)
local function tmp(name) return TMP .. "/" .. name end

local NP = { uint8 = "u8", int8 = "i8", int16 = "i16", uint16 = "u16", int32 = "i32", uint32 = "u32",
             int64 = "i64", float32 = "f32", float64 = "f64", bool = "u8" }
local FMT = { u8 = "B", i8 = "b", i16 = "<i2", u16 = "<I2", i32 = "<i4", u32 = "<I4", i64 = "<i8",
              f32 = "<f", f64 = "<d" }
local SIZE = { u8 = 1, i8 = 1, i16 = 2, u16 = 2, i32 = 4, u32 = 4, i64 = 8, f32 = 4, f64 = 8 }

-- All values of a host tensor, decoded from its raw bytes (independent of the tensor's own API).
local function values(t)
  local b, f, n = t:bytes(), FMT[t.dtype], SIZE[t.dtype]
  local out, pos = {}, 1
  for i = 1, #b // n do out[i], pos = string.unpack(f, b, pos) end
  return out
end

local function sum(v)
  local s, si = 0.0, 0
  for i = 1, #v do
    if math.type(v[i]) == "integer" then si = si + v[i] else s = s + v[i] end
  end
  return s + si
end

local function near(a, b, tol, what)
  if math.abs(a - b) > tol * math.max(1, math.abs(b)) then
    error(string.format("%s: %.10g differs from %.10g", what, a, b), 2)
  end
end

local function near_list(a, b, tol, what)
  assert.are.equal(#b, #a, what .. ": length")
  for i = 1, #b do near(a[i], b[i], tol, what .. "[" .. i .. "]") end
end

local function shape_str(s)
  local o = {}
  for i, v in ipairs(s) do o[i] = tostring(math.tointeger(v) or v) end
  return table.concat(o, "x")
end

-- Our (C, Z, Y, X) shape from the oracle's array shape.
local function our_shape(e)
  local a = e.array_shape
  if #a == 4 then return { a[1], a[2], a[3], a[4] } end
  if #a == 3 then return { 1, a[1], a[2], a[3] } end
  return { 1, 1, a[1], a[2] }
end

local function check_oracle(img, e, name)
  assert.are.equal(shape_str(our_shape(e)), shape_str(img.data.shape), name .. ": shape")
  assert.are.equal(NP[e.dtype], img.data.dtype, name .. ": dtype")
  local v = values(img.data)
  near(sum(v), e.sum, 1e-9, name .. ": sum")
  for _, s in ipairs(e.samples) do near(v[s[1] + 1], s[2], 1e-7, name .. ": voxel " .. s[1]) end
  local g = img.sitk
  if e.dimension == 4 then
    near_list(g.spacing, { e.spacing[1], e.spacing[2], e.spacing[3] }, 1e-6, name .. ": spacing")
    near_list(g.origin, { e.origin[1], e.origin[2], e.origin[3] }, 1e-5, name .. ": origin")
    local d = e.direction
    near_list(g.direction, { d[1], d[2], d[3], d[5], d[6], d[7], d[9], d[10], d[11] }, 1e-6, name .. ": direction")
  else
    near_list(g.spacing, e.spacing, 1e-6, name .. ": spacing")
    near_list(g.origin, e.origin, 1e-5, name .. ": origin")
    near_list(g.direction, e.direction, 1e-6, name .. ": direction")
  end
end

local function sorted_keys(t)
  local k = {}
  for n in pairs(t) do k[#k + 1] = n end
  table.sort(k)
  return k
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

describe("lunet.io.image NIfTI reader against SimpleITK", function()
  for _, name in ipairs(sorted_keys(expected.nifti)) do
    it(name, function()
      local img = image.read(FIX .. name)
      check_oracle(img, expected.nifti[name], name)
    end)
  end

  it("picks the sform or qform as ITK does (distinct cases)", function()
    -- q1_s2_differ: sform code 2 disagrees with the qform -> qform; q1_s1_differ: SCANNER_ANAT sform wins
    local a = image.read(FIX .. "q1_s2_differ.nii.gz").sitk
    local b = image.read(FIX .. "q1_s1_differ.nii.gz").sitk
    near_list(a.origin, { -10, 20, 5.5 }, 1e-6, "qform origin")
    near_list(b.origin, { 4, -8, 1 }, 1e-6, "sform origin")
  end)

  it("applies scl_slope/scl_inter into float32 and ignores slope 1 / inter 0", function()
    assert.are.equal("f32", image.read(FIX .. "scl_slope.nii.gz").data.dtype)
    assert.are.equal("i16", image.read(FIX .. "scl_one.nii").data.dtype)
  end)

  it("gives nnU-Net's spacing (array order) and 2-D handling", function()
    local img = image.read(FIX .. "dt_int16.nii.gz")
    near_list(img.spacing, { 2.5, 0.8, 0.7 }, 1e-6, "spacing")
    local two = image.read(FIX .. "two_d.nii.gz")
    assert.are.equal("1x1x6x7", shape_str(two.data.shape))
    near_list(two.spacing, { 999 * 0.75, 0.75, 0.5 }, 1e-9, "2-D spacing")
    assert.are.equal(2, #two.sitk.spacing)
    local four = image.read(FIX .. "four_d.nii.gz")
    assert.are.equal("3x5x6x7", shape_str(four.data.shape))
  end)
end)

describe("lunet.io.image real files", function()
  for _, name in ipairs(sorted_keys(expected.real)) do
    local e = expected.real[name]
    it(name, function()
      local path = e["local"] and (FIX .. name) or e.path
      if not e["local"] and not exists(path) and exists("/tmp/itkex" .. e.path) then path = "/tmp/itkex" .. e.path end
      if not exists(path) then
        pending(path .. " missing (apt-get download insighttoolkit5-examples; dpkg -x it)")
        return
      end
      check_oracle(image.read(path), e, name)
    end)
  end

  it("ch2.nii.gz (qform_code 0, MNI sform) matches SimpleITK's shape, spacing and direction", function()
    local p = "/usr/share/mricron/templates/ch2.nii.gz"
    if not exists(p) then pending("mricron-data not installed") return end
    local img = image.read(p)
    assert.are.equal("1x181x217x181", shape_str(img.data.shape))
    near_list(img.spacing, { 1, 1, 1 }, 0, "spacing")
    near_list(img.sitk.origin, { 90, 125, -71 }, 0, "origin")
    near_list(img.sitk.direction, { -1, 0, 0, 0, -1, 0, 0, 0, 1 }, 0, "direction")
  end)

  it("KmeansTest_T1UCharRaw.nii.gz matches SimpleITK's shape, spacing and direction", function()
    local p = "/usr/share/doc/insighttoolkit5-examples/examples/Data/KmeansTest_T1UCharRaw.nii.gz"
    if not exists(p) and exists("/tmp/itkex" .. p) then p = "/tmp/itkex" .. p end
    if not exists(p) then pending("insighttoolkit5-examples not unpacked") return end
    local img = image.read(p)
    assert.are.equal("1x62x128x128", shape_str(img.data.shape))
    near_list(img.spacing, { 3, 2, 2 }, 0, "spacing (z, y, x)")
    near_list(img.sitk.direction, { 1, 0, 0, 0, 0, -1, 0, 1, 0 }, 1e-12, "direction")
  end)
end)

describe("lunet.io.image TIFF and PNG readers against tifffile/skimage", function()
  for _, name in ipairs(sorted_keys(expected.tiff)) do
    it(name, function()
      local e = expected.tiff[name]
      local img = image.read(FIX .. name)
      local a = e.array_shape
      local want
      if #a == 3 and a[3] == 3 and name:find("rgb") then want = { 3, 1, a[1], a[2] }
      elseif #a == 3 then want = { 1, a[1], a[2], a[3] }
      else want = { 1, 1, a[1], a[2] } end
      assert.are.equal(shape_str(want), shape_str(img.data.shape))
      assert.are.equal(NP[e.dtype], img.data.dtype)
      local v = values(img.data)
      near(sum(v), e.sum, 1e-9, name .. ": sum")
      if want[1] == 1 then
        for _, s in ipairs(e.samples) do near(v[s[1] + 1], s[2], 1e-7, name .. ": value " .. s[1]) end
      end
    end)
  end

  it("Tiff3DIO takes spacing from the <case>.json sidecar, 2-D TIFF is a natural image", function()
    local img = image.read(FIX .. "case_0000.tif")
    assert.are.equal("Tiff3DIO", img.reader)
    near_list(img.spacing, { 3.0, 0.5, 0.25 }, 0, "sidecar spacing")
    local flat = image.read(FIX .. "img_u8.tif")
    assert.are.equal("NaturalImage2DIO", flat.reader)
    near_list(flat.spacing, { 999, 1, 1 }, 0, "2-D spacing")
    near_list(image.read(FIX .. "vol_u16_strips.tif").spacing, { 1, 1, 1 }, 0, "no sidecar")
  end)

  for _, name in ipairs(sorted_keys(expected.png)) do
    it(name, function()
      local e = expected.png[name]
      local img = image.read(FIX .. name)
      local a = e.array_shape
      local want = #a == 3 and { a[3], 1, a[1], a[2] } or { 1, 1, a[1], a[2] }
      assert.are.equal(shape_str(want), shape_str(img.data.shape))
      assert.are.equal(NP[e.dtype], img.data.dtype)
      near(sum(values(img.data)), e.sum, 1e-12, name .. ": sum")
      near_list(img.spacing, { 999, 1, 1 }, 0, "spacing")
    end)
  end
end)

describe("lunet.io.image round trips (read, write, read) are exact", function()
  local function same(a, b, what, geom_tol, spacing_tol)
    assert.are.equal(a.data.dtype, b.data.dtype, what .. ": dtype")
    assert.are.equal(shape_str(a.data.shape), shape_str(b.data.shape), what .. ": shape")
    assert.is_true(a.data:bytes() == b.data:bytes(), what .. ": voxels differ")
    near_list(b.spacing, a.spacing, spacing_tol or 0, what .. ": spacing")
    if a.sitk then
      near_list(b.sitk.spacing, a.sitk.spacing, spacing_tol or 0, what .. ": sitk spacing")
      near_list(b.sitk.origin, a.sitk.origin, geom_tol or 0, what .. ": origin")
      near_list(b.sitk.direction, a.sitk.direction, geom_tol or 0, what .. ": direction")
    end
  end

  for _, dt in ipairs({ "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "float32", "float64" }) do
    it("NIfTI " .. dt .. " (.nii.gz and .nii)", function()
      local a = image.read(FIX .. "dt_" .. dt .. ".nii.gz")
      for _, ending in ipairs({ ".nii.gz", ".nii" }) do
        local p = tmp("rt_" .. dt .. ending)
        image.write(p, a.data, a)
        local b = image.read(p)
        -- oblique direction through NIfTI-1's float32 sform: exact to float precision
        same(a, b, dt .. ending, 1e-7)
        local c = image.read(p)
        image.write(p, c.data, c)
        same(c, image.read(p), dt .. ending .. " second pass", 0)
      end
    end)
    if dt ~= "int64" then
      it("TIFF " .. dt .. " with spacing sidecar", function()
        local a = image.read(FIX .. "dt_" .. dt .. ".nii.gz")
        local p = tmp("rt_" .. dt .. "_0000.tif")
        image.write(p, a.data, { spacing = { 2.5, 0.8, 0.7 }, reader = "Tiff3DIO" })
        local b = image.read(p)
        assert.are.equal("Tiff3DIO", b.reader)
        assert.is_true(a.data:bytes() == b.data:bytes(), dt .. ": tiff voxels")
        assert.are.equal(a.data.dtype, b.data.dtype)
        near_list(b.spacing, { 2.5, 0.8, 0.7 }, 0, "sidecar spacing")
      end)
    end
  end

  it("NIfTI 2-D, 4-D, big-endian, NIfTI-2 and real files keep voxels and geometry", function()
    for _, f in ipairs({ "two_d.nii.gz", "four_d.nii.gz", "big_endian.nii", "nifti2.nii", "scl_slope.nii.gz",
                         "q_only.nii.gz", "s_only_mni.nii.gz", "nibabel_example4d.nii.gz" }) do
      local a = image.read(FIX .. f)
      local p = tmp("rt_" .. f:gsub("%.nii$", ".nii.gz"))
      image.write(p, a.data, a)
      -- NIfTI-2 stores doubles; NIfTI-1 (what SimpleITK reads) keeps float32 spacing
      same(a, image.read(p), f, 1e-7, f == "nifti2.nii" and 1e-7 or 0)
    end
    local p = "/usr/share/mricron/templates/ch2.nii.gz"
    if exists(p) then
      local a = image.read(p)
      image.write(tmp("ch2.nii.gz"), a.data, a)
      same(a, image.read(tmp("ch2.nii.gz")), "ch2", 0)
    end
  end)

  it("PNG grey 8/16-bit, RGB, RGBA", function()
    for _, f in ipairs({ "gray8.png", "gray16.png", "rgb.png", "rgba.png" }) do
      local a = image.read(FIX .. f)
      image.write(tmp("rt_" .. f), a.data, a)
      same(a, image.read(tmp("rt_" .. f)), f)
    end
  end)

  it("2-D TIFF (grey and RGB)", function()
    for _, f in ipairs({ "img_u8.tif", "img_rgb.tif" }) do
      local a = image.read(FIX .. f)
      image.write(tmp("rt_" .. f), a.data, a)
      same(a, image.read(tmp("rt_" .. f)), f)
    end
  end)

  it("writes atomically: no temporary files left, failures name the file", function()
    local a = image.read(FIX .. "dt_uint8.nii.gz")
    local d = tmp("atomic")
    os.execute("mkdir -p " .. d)
    image.write(d .. "/x.nii.gz", a.data, a)
    local listing = io.popen("ls -a " .. d):read("a")
    assert.are.equal(".\n..\nx.nii.gz\n", listing)
    local ok, err = pcall(image.write, tmp("no/such/dir/y.nii.gz"), a.data, a)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("no/such/dir/y.nii.gz", 1, true))
  end)
end)

describe("lunet.io.image.write_seg", function()
  it("casts to u8 below 255 and u16 otherwise, keeping the reference geometry", function()
    local ref = image.read(FIX .. "dt_int16.nii.gz")
    local small = image.read(FIX .. "dt_uint8.nii.gz").data:astype("i32")
    image.write_seg(tmp("seg8.nii.gz"), small, ref)
    local a = image.read(tmp("seg8.nii.gz"))
    local max8 = 0
    for _, v in ipairs(values(a.data)) do max8 = math.max(max8, v) end
    assert.are.equal(max8 < 255 and "u8" or "u16", a.data.dtype)
    near_list(a.sitk.origin, ref.sitk.origin, 1e-7, "origin")
    near_list(a.sitk.direction, ref.sitk.direction, 1e-7, "direction")
    local big = image.read(FIX .. "dt_uint16.nii.gz").data
    image.write_seg(tmp("seg16.nii.gz"), big, ref)
    local b = image.read(tmp("seg16.nii.gz"))
    assert.are.equal("u16", b.data.dtype)
    assert.is_true(b.data:bytes() == big:bytes())
  end)
end)

describe("lunet.io.image bad input", function()
  for _, name in ipairs(sorted_keys(expected.bad)) do
    it(name .. " gives an error naming the file", function()
      local p = FIX .. "bad/" .. name
      local ok, err = pcall(image.read, p)
      assert.is_false(ok, name .. " was read without error")
      err = tostring(err)
      assert.truthy(err:find(p, 1, true), "error does not name the file: " .. err)
      local want = expected.bad[name]
      if want ~= "" then assert.truthy(err:lower():find(want:lower(), 1, true), "error lacks '" .. want .. "': " .. err) end
    end)
  end

  it("unsupported endings and missing files name the file", function()
    local ok, err = pcall(image.read, tmp("x.jpg"))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("x.jpg", 1, true))
    ok, err = pcall(image.read, tmp("missing.nii.gz"))
    assert.is_false(ok)
    assert.truthy(tostring(err):find("missing.nii.gz", 1, true))
  end)
end)

describe("lunet.io.image.reader_for", function()
  it("follows nnU-Net's registry order and overwrite_image_reader_writer", function()
    assert.are.equal("SimpleITKIO", image.reader_for(".nii.gz").name)
    assert.are.equal("NibabelIO", image.reader_for(".nii").name)
    assert.are.equal("NaturalImage2DIO", image.reader_for(".png").name)
    assert.are.equal("NaturalImage2DIO", image.reader_for(".tif", nil, FIX .. "img_u8.tif").name)
    assert.are.equal("Tiff3DIO", image.reader_for(".tif", nil, FIX .. "vol_u16_zlib.tif").name)
    assert.are.equal("Tiff3DIO", image.reader_for(".tif", { overwrite_image_reader_writer = "Tiff3DIO" }).name)
    local auto = image.reader_for(".tif")
    assert.are.equal("NaturalImage2DIO", auto.read(FIX .. "img_u8.tif").reader)
    assert.are.equal("Tiff3DIO", auto.read(FIX .. "vol_u16_zlib.tif").reader)
    assert.has_error(function() image.reader_for(".jpg") end)
  end)
end)

describe("lunet.io.image spec cleanup", function()
  it("removes its temporary folder", function()
    assert.is_true(os.execute("rm -rf '" .. TMP .. "'") and true)
  end)
end)
