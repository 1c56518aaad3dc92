-- npz/npy I/O against numpy-written files (np.savez, np.savez_compressed, np.save) and round trips.
local lunet = require "lunet"
local core = lunet.core
local cjson = require "cjson"

local FIX = "spec/fixtures/eval/npz/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local expected = cjson.decode(slurp(FIX .. "expected.json"))
local DT = { float16 = "f16", float32 = "f32", float64 = "f64", uint8 = "u8", int16 = "i16", int64 = "i64" }

local function tmpname(suffix) local p = os.tmpname(); os.remove(p); return p .. suffix end

describe("npz", function()
  for _, file in ipairs({ "stored.npz", "compressed.npz" }) do
    it("reads numpy's " .. file .. " (every dtype, exact values)", function()
      local z = core.npz.read(FIX .. file)
      for name, e in pairs(expected) do
        if name ~= "big" then
          local t = assert(z[name], name)
          assert.are.equal(DT[e.dtype], t.dtype, name)
          assert.are.same(e.shape, t.shape, name)
          local flat = t:flat()
          assert.are.equal(#e.flat, #flat)
          for i = 1, #flat do assert.are.equal(e.flat[i], flat[i], name .. "[" .. i .. "]") end
        end
      end
    end)
  end

  it("reads a multi-block deflate stream (savez_compressed float32)", function()
    local t = core.npz.read(FIX .. "big.npz").probabilities
    local e = expected.big
    assert.are.same(e.shape, t.shape)
    local flat = t:flat()
    local s = 0
    for i = 1, #flat do s = s + flat[i] end
    assert.is_true(math.abs(s - e.sum) < 1e-6 * e.sum)
    for i = 1, 5 do assert.are.equal(e.first[i], flat[i]) end
    assert.are.equal(e.last, flat[#flat])
  end)

  it("reads .npy", function()
    local t = core.npz.read_npy(FIX .. "plain.npy")
    assert.are.same(expected.f32.shape, t.shape)
    assert.are.same(expected.f32.flat, t:flat())
  end)

  for _, level in ipairs({ 0, 1, 6 }) do
    it("round-trips every dtype at level " .. level, function()
      local src = core.npz.read(FIX .. "compressed.npz")
      local p = tmpname(".npz")
      core.npz.write(p, src, { level = level })
      local back = core.npz.read(p)
      os.remove(p)
      for name, t in pairs(src) do
        assert.are.equal(t.dtype, back[name].dtype)
        assert.are.same(t.shape, back[name].shape)
        assert.are.equal(t:bytes(), back[name]:bytes(), name)
      end
    end)
  end

  it("round-trips .npy and writes numpy's header layout (64-byte aligned data)", function()
    local t = lunet.tensor({ 1, 2, 3, 4, 5, 6 }, { shape = { 2, 3 }, dtype = "i16" })
    local p = tmpname(".npy")
    core.npz.write_npy(p, t)
    local raw = slurp(p)
    local back = core.npz.read_npy(p)
    os.remove(p)
    assert.are.equal("\x93NUMPY\x01\x00", raw:sub(1, 8))
    assert.are.equal(0, (#raw - 12) % 64)
    assert.matches("{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", raw, 1, true)
    assert.are.same({ 1, 2, 3, 4, 5, 6 }, back:flat())
  end)

  it("names the file in errors", function()
    local ok, err = pcall(core.npz.read, "/nonexistent/x.npz")
    assert.is_false(ok)
    assert.matches("/nonexistent/x.npz", err, 1, true)
    local p = tmpname(".npz")
    local f = io.open(p, "wb"); f:write("not a zip file at all"); f:close()
    ok, err = pcall(core.npz.read, p)
    os.remove(p)
    assert.is_false(ok)
    assert.matches("no end of central directory", err, 1, true)
    -- truncated compressed entry
    local good = slurp(FIX .. "compressed.npz")
    f = io.open(p, "wb"); f:write(good:sub(1, 200) .. good:sub(-400)); f:close()
    ok = pcall(core.npz.read, p)
    os.remove(p)
    assert.is_false(ok)
  end)
end)
