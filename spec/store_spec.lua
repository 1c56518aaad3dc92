-- Chunked case store: patch reads equal the same crop of the full array (independent Lua reference), padding
-- outside the image with 0 (data) / -1 (seg) as nnU-Net's data loader; atomic, validated files.
local lunet = require "lunet"
local store = require "lunet.io.store"
local core = lunet.core

local function tmpname()
  local p = os.tmpname()
  os.remove(p)
  return p .. ".lcs"
end

-- deterministic pseudo-random content (LCG), C channels of (Z, Y, X)
local function make(C, Z, Y, X, seed, dtype, lo, hi)
  local v, s = {}, seed
  for i = 1, C * Z * Y * X do
    s = (s * 1103515245 + 12345) % 2147483648
    if dtype == "f32" then v[i] = (s % 100000) / 1000 - 50 else v[i] = lo + s % (hi - lo + 1) end
  end
  return lunet.tensor(v, { shape = { C, Z, Y, X }, dtype = dtype }), v
end

-- reference crop of a flat array with padding
local function ref_crop(v, C, dims, lo, hi, pad)
  local out = {}
  for c = 0, C - 1 do
    for z = lo[1], hi[1] - 1 do
      for y = lo[2], hi[2] - 1 do
        for x = lo[3], hi[3] - 1 do
          local inside = z >= 0 and z < dims[1] and y >= 0 and y < dims[2] and x >= 0 and x < dims[3]
          out[#out + 1] = inside and v[((c * dims[1] + z) * dims[2] + y) * dims[3] + x + 1] or pad
        end
      end
    end
  end
  return out
end

local function same(a, b)
  if #a ~= #b then return false, "length " .. #a .. " vs " .. #b end
  for i = 1, #a do
    if a[i] ~= b[i] then return false, "element " .. i .. ": " .. tostring(a[i]) .. " vs " .. tostring(b[i]) end
  end
  return true
end

describe("store", function()
  local C, Z, Y, X = 2, 13, 21, 17
  local data, dv = make(C, Z, Y, X, 7, "f32")
  local seg, sv = make(1, Z, Y, X, 11, "i8", -1, 3)
  local path = tmpname()
  local dims = { Z, Y, X }
  setup(function() store.write(path, data, seg, { chunk = { 4, 8, 5 }, level = 3, threads = 2 }) end)
  teardown(function() os.remove(path) end)

  it("reports shape, channels and chunking", function()
    local c = store.open(path)
    assert.are.same({ Z, Y, X }, c.shape)
    assert.are.same({ 4, 8, 5 }, c.chunk)
    assert.are.equal(2, c.channels)
    assert.are.equal(1, c.seg_channels)
    assert.are.equal("i8", c.seg_dtype)
    c:close()
  end)

  local boxes = {
    { { 0, 0, 0 }, { Z, Y, X } },          -- whole image
    { { 3, 5, 2 }, { 9, 17, 13 } },        -- inside, crossing chunk borders
    { { 4, 8, 5 }, { 8, 16, 10 } },        -- exactly one chunk
    { { -3, -5, -2 }, { 6, 9, 4 } },       -- crossing the low border
    { { 10, 15, 12 }, { 20, 30, 25 } },    -- crossing the high border
    { { -2, -2, -2 }, { Z + 2, Y + 3, X + 4 } }, -- larger than the image on all sides
    { { 20, 0, 0 }, { 24, 5, 5 } },        -- entirely outside
    { { 5, 5, 5 }, { 5, 9, 9 } },          -- empty along z
    { { 12, 20, 16 }, { 13, 21, 17 } },    -- last voxel
  }
  for i, b in ipairs(boxes) do
    it("patch " .. i .. " equals the crop of the full array (pad 0 / -1)", function()
      local c = store.open(path)
      local d, s = c:read_patch(b[1], b[2])
      local ext = { b[2][1] - b[1][1], b[2][2] - b[1][2], b[2][3] - b[1][3] }
      assert.are.same({ C, ext[1], ext[2], ext[3] }, d.shape)
      assert.are.same({ 1, ext[1], ext[2], ext[3] }, s.shape)
      local ok, why = same(d:flat(), ref_crop(data:flat(), C, dims, b[1], b[2], 0))
      assert.is_true(ok, why)
      ok, why = same(s:flat(), ref_crop(sv, 1, dims, b[1], b[2], -1))
      assert.is_true(ok, why)
      c:close()
    end)
  end

  it("reads nested-box form and module-level read_patch", function()
    local d, s = store.read_patch(path, { { 1, 3 }, { 2, 4 }, { 3, 5 } })
    assert.is_true((same(d:flat(), ref_crop(data:flat(), C, dims, { 1, 2, 3 }, { 3, 4, 5 }, 0))))
    assert.is_true((same(s:flat(), ref_crop(sv, 1, dims, { 1, 2, 3 }, { 3, 4, 5 }, -1))))
  end)

  it("int16 segmentations and default 64^3 chunks round-trip", function()
    local p = tmpname()
    local s16, v16 = make(1, Z, Y, X, 5, "i16", -1, 300)
    store.write(p, data, s16)
    local c = store.open(p)
    assert.are.equal("i16", c.seg_dtype)
    assert.are.same({ Z, Y, X }, c.chunk)
    local _, s = c:read_patch({ -1, 0, 0 }, { Z, Y, X + 1 })
    assert.is_true((same(s:flat(), ref_crop(v16, 1, dims, { -1, 0, 0 }, { Z, Y, X + 1 }, -1))))
    c:close()
    os.remove(p)
  end)

  it("rejects truncated, corrupted and foreign files; valid() tells complete files apart", function()
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    assert.is_true(store.valid(path))
    local p = tmpname()
    local function put(s) local g = assert(io.open(p, "wb")); g:write(s); g:close() end
    put(bytes:sub(1, #bytes - 1))
    assert.is_false(store.valid(p))
    assert.has_error(function() store.open(p) end)
    put(bytes:sub(1, 100) .. string.char((bytes:byte(101) + 1) % 256) .. bytes:sub(102)) -- index byte flipped
    assert.is_false(store.valid(p))
    local ok, err = pcall(store.open, p)
    assert.is_false(ok)
    assert.truthy(tostring(err):find(p, 1, true))
    put("not a store at all, just some bytes")
    assert.is_false(store.valid(p))
    os.remove(p)
    assert.is_false(store.valid(p))
  end)

  it("a corrupted chunk payload is reported when read", function()
    local f = assert(io.open(path, "rb"))
    local bytes = f:read("a")
    f:close()
    local p = tmpname()
    -- flip a byte in the middle of the payload region (header+index are checksummed, chunks are zstd frames)
    local k = #bytes - 40
    local g = assert(io.open(p, "wb"))
    g:write(bytes:sub(1, k - 1) .. string.char((bytes:byte(k) ~ 0xff)) .. bytes:sub(k + 1))
    g:close()
    local c = store.open(p)
    assert.has_error(function() c:read_patch({ 0, 0, 0 }, { Z, Y, X }) end)
    c:close()
    os.remove(p)
  end)

  it("the write is atomic: no partial file appears under the final name", function()
    local p = tmpname()
    -- a directory in the way makes the final rename fail: nothing must be left behind
    assert(os.execute("mkdir -p " .. p))
    assert.has_error(function() store.write(p, data, seg) end)
    assert(os.execute("rmdir " .. p))
    local dir = p:match("^(.*)/")
    local base = p:match("([^/]*)$")
    local h = io.popen("ls -a " .. dir)
    local listing = h:read("a")
    h:close()
    for name in listing:gmatch("[^\n]+") do assert.is_nil(name:find(base .. ".", 1, true)) end
  end)
end)
