-- The cascade's binary morphology on one 96^3 patch: Lua run-length reference vs the C path (lunet.core.morph).
-- usage: lua5.4 bench/morph.lua
local cascade = require "lunet.cascade"
local sp = { 96, 96, 96 }
local n = 96 * 96 * 96
local m = {}
-- a blob mask: a sphere of radius 30 plus sparse noise, like a one-hot channel of a coarse segmentation
local s = 1
for z = 0, 95 do for y = 0, 95 do for x = 0, 95 do
  s = (s * 1103515245 + 12345) % 2147483648
  local d = (z - 48) ^ 2 + (y - 48) ^ 2 + (x - 48) ^ 2
  m[#m + 1] = (d < 900 or s / 2147483648 < 0.01) and 1.0 or 0.0
end end end
assert(#m == n)
local function time(f)
  local t0 = os.clock()
  f()
  return os.clock() - t0
end
for _, r in ipairs({ 2.5, 4.5, 7.5 }) do
  for op = 1, 4 do
    local tl = time(function() cascade.binary_op_lua(m, sp, op, r, 3) end)
    local tc = time(function() cascade.binary_op(m, sp, op, r, 3) end)
    print(string.format("%-8s r=%.1f  lua %.3f s  c %.3f s", cascade.operator_names[op], r, tl, tc))
  end
end
