-- The tensor type: creation, dtypes, host/device moves, errors.
local lunet = require "lunet"
local core = lunet.core

describe("tensor", function()
  it("builds from nested and flat tables and reads back", function()
    local t = lunet.tensor({{1, 2, 3}, {4, 5, 6}})
    assert.same({2, 3}, t.shape)
    assert.equal("f32", t.dtype)
    assert.same({{1, 2, 3}, {4, 5, 6}}, t:to_table())
    local f = lunet.tensor({1, 2, 3, 4, 5, 6}, {shape = {3, 2}, dtype = "i32"})
    assert.same({3, 2}, f.shape)
    assert.same({1, 2, 3, 4, 5, 6}, f:flat())
    assert.equal(math.type(f:flat()[1]), "integer")
  end)

  it("round-trips every dtype through the device", function()
    for _, dt in ipairs({"f32", "u8", "i16", "i32"}) do
      local h = lunet.tensor({0, 1, 2, 100, 127}, {shape = {5}, dtype = dt})
      local d = h:to_device()
      assert.is_true(d.on_device)
      assert.same(h:flat(), d:to_host():flat())
      assert.same(h:flat(), d:flat()) -- reading a device tensor downloads it
    end
  end)

  it("rounds f16 to nearest even and keeps exact halves", function()
    local h = lunet.tensor({1.0, 0.5, 65504, 1 / 3, -2.75, 1e-7}, {shape = {6}, dtype = "f32"}):astype("f16")
    local v = h:flat()
    assert.equal(1.0, v[1]); assert.equal(0.5, v[2]); assert.equal(65504, v[3])
    assert.near(0.333251953125, v[4], 0) -- nearest half to 1/3
    assert.equal(-2.75, v[5])
    assert.near(1.1920928955078125e-07, v[6], 0) -- subnormal half
  end)

  it("keeps host-only dtypes for exact image round trips", function()
    local h = lunet.tensor({-1, 65535, 3}, {shape = {3}, dtype = "f64"})
    assert.same({-1, 65535, 3}, h:flat())
    local u = h:astype("u16")
    assert.equal("u16", u.dtype)
    assert.equal(65535, u:get(2))
  end)

  it("converts to and from raw bytes", function()
    local t = lunet.tensor({1.5, -2}, {shape = {2}})
    local b = t:bytes()
    assert.equal(8, #b)
    assert.equal(string.pack("<ff", 1.5, -2), b)
    assert.same({1.5, -2}, core.from_bytes(b, {2}, "f32"):flat())
  end)

  it("reshapes without changing data and refuses a new element count", function()
    local t = lunet.tensor({1, 2, 3, 4, 5, 6}, {shape = {6}}):to_device()
    local r = t:reshape({2, 3})
    assert.same({{1, 2, 3}, {4, 5, 6}}, r:to_table())
    assert.has_error(function() t:reshape({4}) end)
  end)

  it("reports its shape, dtype and place in tostring", function()
    assert.matches("lunet.Tensor%(i16, 2x2, host%)", tostring(lunet.tensor({{1, 2}, {3, 4}}, {dtype = "i16"})))
  end)

  it("names the problem on bad input", function()
    assert.has_error(function() lunet.tensor({1, 2}, {shape = {3}}) end, "tensor: 2 values for a shape of 3 elements")
    assert.has_error(function() lunet.tensor({1, "x"}) end, "tensor: element 2 is not a number")
    local ok, err = pcall(lunet.tensor, {1}, {dtype = "f128"})
    assert.is_false(ok)
    assert.matches("unknown dtype 'f128'", err)
    ok, err = pcall(core.zeros, {1, 2, 3, 4, 5, 6})
    assert.is_false(ok)
    assert.matches("at most 5 dimensions", err)
  end)

  it("frees explicitly and rejects use after free", function()
    local t = lunet.tensor({1, 2})
    t:free()
    assert.equal("lunet.Tensor(freed)", tostring(t))
    assert.has_error(function() t:flat() end)
  end)
end)

describe("devices", function()
  it("lists at least one OpenCL device with memory and compute units", function()
    local devs = lunet.devices()
    assert.is_true(#devs >= 1)
    for i, d in ipairs(devs) do
      assert.equal(i - 1, d.index)
      assert.is_true(d.global_mem > 0 and d.compute_units > 0 and #d.name > 0)
    end
  end)

  it("reuses pooled buffers for repeated same-size allocations", function()
    local before = core.pool_stats()
    for _ = 1, 20 do core.zeros({1000}, "f32", true):free() end
    local after = core.pool_stats()
    assert.is_true(after.reuses - before.reuses >= 19)
    assert.is_true(after.allocs - before.allocs <= 1)
  end)
end)
