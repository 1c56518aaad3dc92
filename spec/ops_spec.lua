-- First device ops against double-precision host references.
local lunet = require "lunet"
local ops = lunet.core.ops

local function rand_table(n, seed)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = (x / 2147483648) * 2 - 1
  end
  return t
end

local function dev(t, shape) return lunet.tensor(t, {shape = shape}):to_device() end
local function poisoned(shape) local n = 1; for _, s in ipairs(shape) do n = n * s end
  local t = lunet.core.zeros(shape, "f32", true); ops.fill(t, 0 / 0); return t, n end

local function assert_close(want, got, rel)
  assert.equal(#want, #got)
  for i = 1, #want do
    local tol = rel * math.max(1, math.abs(want[i]))
    if not (math.abs(want[i] - got[i]) <= tol) then
      error(string.format("element %d: want %.9g got %.9g", i, want[i], got[i]), 2)
    end
  end
end

describe("elementwise ops", function()
  local n = 1000 + 37 -- not a multiple of the work-group size
  local a, b = rand_table(n, 1), rand_table(n, 2)

  it("fill writes every element", function()
    local y = poisoned({n})
    ops.fill(y, 2.5)
    for _, v in ipairs(y:flat()) do assert.equal(2.5, v) end
  end)

  it("scale, axpy, add, mul match the host", function()
    local x, y = dev(a, {n}), dev(b, {n})
    local s, ax, ad, mu = {}, {}, {}, {}
    for i = 1, n do
      s[i] = a[i] * 3; ax[i] = b[i] + 0.5 * a[i]; ad[i] = a[i] + b[i]; mu[i] = a[i] * b[i]
    end
    local z = poisoned({n}); ops.add(z, x, y); assert_close(ad, z:flat(), 1e-6)
    z = poisoned({n}); ops.mul(z, x, y); assert_close(mu, z:flat(), 1e-6)
    local yy = y:clone(); ops.axpy(yy, 0.5, x); assert_close(ax, yy:flat(), 1e-6)
    local xx = x:clone(); ops.scale(xx, 3); assert_close(s, xx:flat(), 1e-6)
  end)

  it("copy moves bytes of any dtype", function()
    local src = lunet.tensor({1, 2, 3}, {shape = {3}, dtype = "i32"}):to_device()
    local dst = lunet.core.zeros({3}, "i32", true)
    ops.copy(dst, src)
    assert.same({1, 2, 3}, dst:flat())
  end)

  it("refuses host tensors and mismatched shapes with a message", function()
    local ok, err = pcall(ops.add, lunet.tensor({1}), lunet.tensor({1}), lunet.tensor({1}))
    assert.is_false(ok)
    assert.matches("host tensor", err)
    ok, err = pcall(ops.add, dev({1, 2}, {2}), dev({1, 2}, {2}), dev({1, 2, 3}, {3}))
    assert.is_false(ok)
    assert.matches("shapes 2 and 3 differ", err)
  end)
end)

describe("reductions", function()
  it("sum, sumsq, mean and max match double precision on a large odd-sized vector", function()
    local n = 300001
    local a = rand_table(n, 7)
    local s, ss, mx = 0, 0, -math.huge
    for i = 1, n do s = s + a[i]; ss = ss + a[i] * a[i]; mx = math.max(mx, a[i]) end
    local x = dev(a, {n})
    -- inputs are rounded to float32 on upload: compare against the rounded values' sums
    local r = lunet.tensor(a, {shape = {n}}):flat()
    local rs, rss = 0, 0
    for i = 1, n do rs = rs + r[i]; rss = rss + r[i] * r[i] end
    assert.near(rs, ops.sum(x), 1e-6 * n ^ 0.5)
    assert.near(rss, ops.sumsq(x), 1e-6 * rss)
    assert.near(rs / n, ops.mean(x), 1e-8)
    assert.near(mx, ops.max(x), 1e-7)
    assert.near(s, ops.sum(x), 1e-3)
  end)
end)

describe("gemm", function()
  local function host_gemm(A, B, m, n, k, ta, tb)
    local C = {}
    for i = 0, m - 1 do
      for j = 0, n - 1 do
        local acc = 0
        for p = 0, k - 1 do
          local av = ta and A[p * m + i + 1] or A[i * k + p + 1]
          local bv = tb and B[j * k + p + 1] or B[p * n + j + 1]
          acc = acc + av * bv
        end
        C[i * n + j + 1] = acc
      end
    end
    return C
  end

  for _, case in ipairs({{17, 23, 31, false, false}, {64, 5, 129, true, false}, {3, 70, 9, false, true},
                         {33, 33, 33, true, true}}) do
    local m, n, k, ta, tb = table.unpack(case)
    it(string.format("%dx%dx%d trans_a=%s trans_b=%s matches the host", m, n, k, ta, tb), function()
      local A, B = rand_table(m * k, m), rand_table(k * n, n)
      local Ad = dev(A, ta and {k, m} or {m, k})
      local Bd = dev(B, tb and {n, k} or {k, n})
      local Af, Bf = Ad:flat(), Bd:flat() -- float32-rounded inputs
      local C = poisoned({m, n})
      ops.gemm(C, Ad, Bd, {trans_a = ta, trans_b = tb})
      assert_close(host_gemm(Af, Bf, m, n, k, ta, tb), C:flat(), 1e-5)
    end)
  end

  it("applies alpha and beta and batches over a leading axis", function()
    local A, B, C0 = rand_table(2 * 4 * 3, 3), rand_table(2 * 3 * 5, 4), rand_table(2 * 4 * 5, 5)
    local Ad, Bd, Cd = dev(A, {2, 4, 3}), dev(B, {2, 3, 5}), dev(C0, {2, 4, 5})
    local Af, Bf, Cf = Ad:flat(), Bd:flat(), Cd:flat()
    ops.gemm(Cd, Ad, Bd, {alpha = 2, beta = -1})
    local got = Cd:flat()
    for b = 0, 1 do
      local Ab = table.move(Af, b * 12 + 1, b * 12 + 12, 1, {})
      local Bb = table.move(Bf, b * 15 + 1, b * 15 + 15, 1, {})
      local want = host_gemm(Ab, Bb, 4, 5, 3, false, false)
      for i = 1, 20 do
        assert.near(2 * want[i] - Cf[b * 20 + i], got[b * 20 + i], 1e-5)
      end
    end
  end)

  it("names the shapes when they disagree", function()
    local ok, err = pcall(ops.gemm, lunet.core.zeros({2, 2}, "f32", true), dev({1, 2, 3, 4, 5, 6}, {2, 3}),
      dev({1, 2, 3, 4}, {2, 2}))
    assert.is_false(ok)
    assert.matches("gemm: shapes do not agree: A 2x3, B 2x2, C 2x2", err, 1, true)
  end)
end)
