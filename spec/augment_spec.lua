-- Augmentation (nnUNetTrainer.get_training_transforms, batchgeneratorsv2): geometry of the spatial transform against analytic references, exact
-- mirroring and gamma, noise statistics, nearest-exact deep-supervision targets, draw probabilities,
-- and bit-identical output for the same seed whatever the thread count.
local core = require "lunet.core"
local augment = require "lunet.augment"
local A = core.augment

local function close(a, b, tol) return math.abs(a - b) <= tol end

local NONE = { dim = 2, p_rotation = 0, p_scaling = 0, p_noise = 0, p_blur = 0, p_brightness = 0, p_contrast = 0,
  p_lowres = 0, p_gamma_inv = 0, p_gamma = 0, p_mirror = 0 }
local function with(over)
  local t = {}
  for k, v in pairs(NONE) do t[k] = v end
  for k, v in pairs(over) do t[k] = v end
  return t
end

describe("augment", function()
  it("2-D rotation by a known angle reproduces a linear image and a half-plane label analytically", function()
    local n, F = 41, 25
    local f = function(y, x) return 0.5 * y - 0.25 * x + 3 end
    local d, s = {}, {}
    for y = 0, n - 1 do for x = 0, n - 1 do d[#d + 1] = f(y, x); s[#s + 1] = (x >= 20) and 2 or 0 end end
    local img = core.tensor(d, { shape = { 1, 1, n, n } })
    local seg = core.tensor(s, { shape = { 1, 1, n, n }, dtype = "i16" })
    local th = 0.4
    local c, sn = math.cos(th), math.sin(th)
    local oi, os = A.spatial(img, seg, { 1, F, F }, { c, -sn, sn, c })
    local fi, fs = oi:flat(), os:flat()
    local checked = 0
    for j = 0, F - 1 do
      for i = 0, F - 1 do
        local qy, qx = j - (F - 1) / 2, i - (F - 1) / 2
        local sy, sx = c * qy - sn * qx + (n - 1) / 2, sn * qy + c * qx + (n - 1) / 2
        local k = j * F + i + 1
        assert.is_true(close(fi[k], f(sy, sx), 1e-3), ("img at %d,%d: %g vs %g"):format(j, i, fi[k], f(sy, sx)))
        if math.abs(sx - 19.5) > 1 then -- away from the label edge the label is the half-plane's
          assert.are.equal(sx >= 20 and 2 or 0, fs[k]); checked = checked + 1
        end
      end
    end
    assert.is_true(checked > 400)
  end)

  it("scaling samples a larger region and marks outside voxels -1 in the seg", function()
    local n = 11
    local d, s = {}, {}
    for y = 0, n - 1 do for x = 0, n - 1 do d[#d + 1] = y * 100 + x; s[#s + 1] = 1 end end
    local img = core.tensor(d, { shape = { 1, 1, n, n } })
    local seg = core.tensor(s, { shape = { 1, 1, n, n }, dtype = "i16" })
    local oi, os = A.spatial(img, seg, { 1, 11, 11 }, { 2, 0, 0, 2 })
    local fi, fs = oi:flat(), os:flat()
    -- output (5,5) is the centre; (5,6) samples x = 5 + 2
    assert.are.equal(505, fi[5 * 11 + 6]); assert.are.equal(507, fi[5 * 11 + 7])
    assert.are.equal(1, fs[5 * 11 + 6]); assert.are.equal(-1, fs[1]) -- corner maps to (-5,-5)
  end)

  it("3-D rotation of 90 degrees about x turns the (Y, X) plane exactly", function()
    local n = 9
    local d = {}
    for z = 0, n - 1 do for y = 0, n - 1 do for x = 0, n - 1 do d[#d + 1] = z * 100 + y * 10 + x end end end
    local img = core.tensor(d, { shape = { 1, n, n, n } })
    -- R_x (batchgeneratorsv2 SpatialTransform): rotation in the (axis1, axis2) plane
    local oi = A.spatial(img, nil, { n, n, n }, { 1, 0, 0, 0, 0, -1, 0, 1, 0 })
    local fo = oi:flat()
    for z = 0, n - 1 do for y = 0, n - 1 do for x = 0, n - 1 do
      local sy, sx = -(x - 4) + 4, (y - 4) + 4
      assert.is_true(close(fo[(z * n + y) * n + x + 1], z * 100 + sy * 10 + sx, 1e-3))
    end end end
  end)

  it("identity transform and no-draw crop copy the centre exactly", function()
    local d = {}
    for i = 1, 6 * 6 do d[i] = i end
    local img = core.tensor(d, { shape = { 1, 1, 6, 6 } })
    local oi = A.spatial(img, nil, { 1, 6, 6 }, { 1, 0, 0, 1 })
    assert.are.same(img:flat(), oi:flat())
    local rng = core.rng.new(1)
    local b = core.tensor(d, { shape = { 1, 1, 1, 6, 6 } })
    local out = A.batch(NONE, rng, b, nil, { 1, 4, 4 }, 1)
    assert.are.same({ 8, 9, 10, 11, 14, 15, 16, 17, 20, 21, 22, 23, 26, 27, 28, 29 }, out:flat())
  end)

  it("mirroring is exact on every axis", function()
    local d = {}
    for i = 1, 2 * 2 * 3 * 4 do d[i] = i end
    local t = core.tensor(d, { shape = { 2, 2, 3, 4 } })
    local m = A.mirror(t, { true, false, true }):flat()
    for c = 0, 1 do for z = 0, 1 do for y = 0, 2 do for x = 0, 3 do
      local want = d[((c * 2 + (1 - z)) * 3 + y) * 4 + (3 - x) + 1]
      assert.are.equal(want, m[((c * 2 + z) * 3 + y) * 4 + x + 1])
    end end end end
    assert.are.same(d, A.mirror(A.mirror(t, { true, true, true }), { true, true, true }):flat())
  end)

  it("gamma follows the formula exactly (with and without inversion, stats retained)", function()
    local t = core.tensor({ 0, 1, 2, 3, 4 }, { shape = { 5 } })
    local g = A.gamma(t, 2, false, false):flat()
    for i, v in ipairs { 0, 0.25, 1, 2.25, 4 } do assert.is_true(close(g[i], v, 1e-6)) end
    g = A.gamma(t, 2, true, false):flat()
    for i, v in ipairs { 0, 1.75, 3, 3.75, 4 } do assert.is_true(close(g[i], v, 1e-6)) end
    g = A.gamma(t, 0.5, false, true):flat()
    local m, s2 = 0, 0
    for _, v in ipairs(g) do m = m + v end
    m = m / 5
    for _, v in ipairs(g) do s2 = s2 + (v - m) ^ 2 end
    assert.is_true(close(m, 2, 1e-5)); assert.is_true(close(math.sqrt(s2 / 4), math.sqrt(2.5), 1e-5))
    -- monotone map: order kept, and sqrt-like (0.5) lifts the lower values relative to a linear map
    assert.is_true(g[1] < g[2] and g[2] < g[3] and g[4] < g[5])
    assert.is_true(g[2] - g[1] > g[5] - g[4])
  end)

  it("Gaussian noise has the drawn sigma and zero mean", function()
    local N = 64 * 64
    local d = {}
    for i = 1, N do d[i] = 1 end
    local img = core.tensor(d, { shape = { 1, 1, 1, 64, 64 } })
    local out = A.batch(with { p_noise = 1, noise_lo = 0.1, noise_hi = 0.1 }, core.rng.new(5), img, nil, { 1, 64, 64 }, 1)
    local m, s2 = 0, 0
    for _, v in ipairs(out:flat()) do m = m + (v - 1) end
    m = m / N
    for _, v in ipairs(out:flat()) do s2 = s2 + (v - 1 - m) ^ 2 end
    assert.is_true(math.abs(m) < 0.01, "mean " .. m)
    assert.is_true(close(math.sqrt(s2 / N), 0.1, 0.005))
  end)

  it("blur kernel: size is the odd integer nearest 6 sigma + 0.5, normalised Gaussian", function()
    local k = A.blur_kernel(1.0) -- round(6.5) = 6 (half to even) -> 7
    assert.are.equal(7, #k)
    local sum = 0
    for i, v in ipairs(k) do sum = sum + v; assert.is_true(close(v, k[#k - i + 1], 1e-7)) end
    assert.is_true(close(sum, 1, 1e-6))
    assert.is_true(close(k[4] / k[5], math.exp(0.5), 1e-5))
    assert.are.equal(3, #A.blur_kernel(0.5)) -- 3.5 -> 4 (even, below n) -> 3, as batchgeneratorsv2
    assert.are.equal(5, #A.blur_kernel(0.75)) -- 5.0 -> 5
  end)

  it("deep-supervision targets: nearest-exact to round(shape * scale)", function()
    local d = {}
    for i = 1, 6 * 7 do d[i] = i - 1 end
    local t = core.tensor(d, { shape = { 1, 1, 1, 6, 7 }, dtype = "i16" })
    local o = A.downsample_seg(t, { 1, 0.5, 0.5 })
    assert.are.same({ 1, 1, 1, 3, 4 }, o.shape) -- round(3.5) = 4
    -- src = floor((dst + 0.5) * in / out): y -> 1, 3, 5 ; x -> 0, 2, 4, 6
    local want = {}
    for _, y in ipairs { 1, 3, 5 } do for _, x in ipairs { 0, 2, 4, 6 } do want[#want + 1] = y * 7 + x end end
    assert.are.same(want, o:flat())
    local sc = augment.ds_scales { { 1, 1 }, { 2, 2 }, { 2, 2 }, { 2, 2 } }
    assert.are.same({ { 1, 1, 1 }, { 1, 0.5, 0.5 }, { 1, 0.25, 0.25 } }, sc)
  end)

  it("draws with nnU-Net's probabilities, seg -1 becomes 0, same seed is bit-identical for any thread count", function()
    local cfg = augment.configure({ 24, 24 })
    local B, n = 64, 29
    local d, s = {}, {}
    for b = 1, B do for i = 1, n * n do d[#d + 1] = (i * 7 + b) % 11 / 11; s[#s + 1] = (i % 5 == 0) and 1 or 0 end end
    local img = core.tensor(d, { shape = { B, 1, 1, n, n } })
    local seg = core.tensor(s, { shape = { B, 1, 1, n, n }, dtype = "i16" })
    local o1, s1, r1 = augment.apply(cfg, core.rng.new(99), img, seg, 1)
    local o2, s2, r2 = augment.apply(cfg, core.rng.new(99), img, seg, 2)
    assert.are.same(o1:flat(), o2:flat())
    assert.are.same(s1:flat(), s2:flat())
    assert.are.same(r1, r2)
    local o3 = augment.apply(cfg, core.rng.new(100), img, seg, 2)
    assert.are_not.same(o1:flat(), o3:flat())
    for _, v in ipairs(s1:flat()) do assert.is_true(v == 0 or v == 1) end
    -- probabilities over many samples (records of 4 batches of 64)
    local cnt, tot = { rotated = 0, gamma = 0, flip = 0, lowres = 0 }, 0
    for k = 1, 4 do
      local _, _, r = augment.apply(cfg, core.rng.new(k), img, seg, 2)
      for _, rec in ipairs(r) do
        tot = tot + 1
        if rec.rotated then cnt.rotated = cnt.rotated + 1 end
        if rec.gamma then cnt.gamma = cnt.gamma + 1 end
        if rec.lowres then cnt.lowres = cnt.lowres + 1 end
        if rec.flipped[3] then cnt.flip = cnt.flip + 1 end
        assert.is_false(rec.flipped[1]) -- 2-D: no flips along Z
      end
    end
    assert.is_true(math.abs(cnt.rotated / tot - 0.2) < 0.08)
    assert.is_true(math.abs(cnt.gamma / tot - 0.3) < 0.08)
    assert.is_true(math.abs(cnt.lowres / tot - 0.25) < 0.08)
    assert.is_true(math.abs(cnt.flip / tot - 0.5) < 0.1)
  end)
end)
