-- Philox4x32-10 known answers (Random123 kat_vectors), distribution moments, ranges, child streams,
-- and exact state save/restore.
local core = require "lunet.core"
local R = core.rng

local function moments(f, n)
  local s, s2 = 0, 0
  for _ = 1, n do local v = f(); s = s + v; s2 = s2 + v * v end
  local m = s / n
  return m, s2 / n - m * m
end

describe("rng", function()
  it("Philox4x32-10 matches the Random123 known-answer vectors", function()
    assert.are.same({ 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8 }, R.philox({ 0, 0, 0, 0 }, { 0, 0 }))
    local f = 0xffffffff
    assert.are.same({ 0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd }, R.philox({ f, f, f, f }, { f, f }))
    local ctr, key = { 0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344 }, { 0xa4093822, 0x299f31d0 }
    assert.are.same({ 0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1 }, R.philox(ctr, key))
    assert.are.same({ 0x4dfccaba, 0x190a87f0, 0xc47362ba, 0xb6b5242a }, R.philox(ctr, key, 7))
  end)

  it("the stream is philox(counter, seed) block by block", function()
    local g = R.new(0x299f31d0a4093822, 0)
    local b0 = R.philox({ 0, 0, 0, 0 }, { 0xa4093822, 0x299f31d0 })
    local b1 = R.philox({ 1, 0, 0, 0 }, { 0xa4093822, 0x299f31d0 })
    for i = 1, 4 do assert.are.equal(b0[i], g:u32()) end
    for i = 1, 4 do assert.are.equal(b1[i], g:u32()) end
  end)

  it("uniform and normal moments", function()
    local g = R.new(42)
    local n = 200000
    local m, v = moments(function() return g:double() end, n)
    assert.is_true(math.abs(m - 0.5) < 0.005, "mean " .. m)
    assert.is_true(math.abs(v - 1 / 12) < 0.002, "var " .. v)
    m, v = moments(function() return g:float() end, n)
    assert.is_true(math.abs(m - 0.5) < 0.005)
    m, v = moments(function() return g:normal() end, n)
    assert.is_true(math.abs(m) < 0.01, "normal mean " .. m)
    assert.is_true(math.abs(v - 1) < 0.02, "normal var " .. v)
    -- fourth moment of N(0,1) is 3
    local s4 = 0
    for _ = 1, n do local x = g:normal(); s4 = s4 + x ^ 4 end
    assert.is_true(math.abs(s4 / n - 3) < 0.1, "kurtosis " .. s4 / n)
    for _ = 1, 1000 do local x = g:double(); assert.is_true(x >= 0 and x < 1) end
    for _ = 1, 1000 do local x = g:uniform(-2, 3); assert.is_true(x >= -2 and x < 3) end
  end)

  it("integer ranges are inclusive and unbiased", function()
    local g = R.new(7)
    local counts = {}
    local n = 70000
    for _ = 1, n do
      local k = g:int(-3, 3)
      assert.is_true(k >= -3 and k <= 3 and math.type(k) == "integer")
      counts[k] = (counts[k] or 0) + 1
    end
    for k = -3, 3 do assert.is_true(math.abs(counts[k] - n / 7) < 5 * math.sqrt(n / 7), "bin " .. k) end
    assert.are.equal(5, g:int(5, 5))
    local big = g:int(0, 1 << 40)
    assert.is_true(big >= 0 and big <= 1 << 40)
  end)

  it("same seed gives the same stream; seeds, streams and children differ", function()
    local a, b, c, d = R.new(1), R.new(1), R.new(2), R.new(1, 1)
    local sa, sb, sc, sd = {}, {}, {}, {}
    for i = 1, 16 do sa[i], sb[i], sc[i], sd[i] = a:u32(), b:u32(), c:u32(), d:u32() end
    assert.are.same(sa, sb)
    assert.are_not.same(sa, sc)
    assert.are_not.same(sa, sd)
    local p = R.new(9)
    local c0, c1, c0b = p:child(0), p:child(1), p:child(0)
    local x0, x1, x0b = {}, {}, {}
    for i = 1, 8 do x0[i], x1[i], x0b[i] = c0:u32(), c1:u32(), c0b:u32() end
    assert.are.same(x0, x0b)
    assert.are_not.same(x0, x1)
  end)

  it("state save/restore resumes the exact stream, mid-block too", function()
    local g = R.new(123456789)
    for _ = 1, 5 do g:u32() end -- 1 word into the second block
    local st = g:state()
    assert.are.equal(7, #st)
    local want = {}
    for i = 1, 10 do want[i] = g:double() end
    local h = R.new(0):set_state(st)
    local got = {}
    for i = 1, 10 do got[i] = h:double() end
    assert.are.same(want, got)
    assert.has_error(function() R.new(0):set_state({ 1, 2, 3 }) end)
    assert.has_error(function() R.new(0):set_state({ 0, 0, 0, 0, 0, 0, 9 }) end)
  end)
end)
