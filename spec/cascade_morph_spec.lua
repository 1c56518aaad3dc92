-- The C binary morphology (lunet.core.morph, csrc/data/morphology.c) against the Lua run-length reference
-- (cascade.binary_op_lua), which spec/cascade_spec.lua ties to batchgeneratorsv2.
local cascade = require "lunet.cascade"
local core = require "lunet.core"

local function random_mask(n, density, seed)
  local s = seed
  local t = {}
  for i = 1, n do
    s = (s * 1103515245 + 12345) % 2147483648
    t[i] = (s / 2147483648) < density and 1.0 or 0.0
  end
  return t
end

describe("cascade morphology in C", function()
  it("equals the Lua reference on random masks, all four operators, integer and half-integer radii", function()
    local shapes = { { 9, 11, 13 }, { 1, 17, 16 }, { 12, 5, 20 } }
    local radii = { 1, 1.5, 2, 2.5, 3.7, 4 }
    local seed = 7
    for _, sp in ipairs(shapes) do
      local n = sp[1] * sp[2] * sp[3]
      for _, density in ipairs({ 0.05, 0.4, 0.9 }) do
        seed = seed + 1
        local m = random_mask(n, density, seed)
        for _, r in ipairs(radii) do
          for op = 1, 4 do
            for _, ndim in ipairs({ 3, 2 }) do
              local want = cascade.binary_op_lua(m, sp, op, r, ndim)
              local got = cascade.binary_op(m, sp, op, r, ndim)
              assert.are.same(want, got)
            end
          end
        end
      end
    end
  end)

  it("clear_label zeroes exactly the picked label's voxels", function()
    local m = { 1, 1, 0, 1, 1 }
    core.morph.clear_label(m, { 2, 2, 0, 3, 2 }, 2)
    assert.are.same({ 0, 0, 0, 1, 0 }, m)
  end)

  it("refuses a mask whose size does not match the shape", function()
    assert.has_error(function() core.morph.op({ 1, 0 }, { 1, 1, 3 }, 1, cascade.footprint(1, 3)) end)
  end)
end)
