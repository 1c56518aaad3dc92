-- 16-bit activation storage (kernels/common/storage.cl: vload_half / vstore_half_rte, computation in float) for
-- the elementwise ops of the training path: LeakyReLU, channel concat/split, instance norm (+ fused LeakyReLU).
-- Each op runs on float16 tensors and is checked against a float64 reference computed from the same float16
-- inputs. Tolerance: one float16 rounding of the output (2^-11 relative) plus float32 arithmetic, so 1e-3
-- relative, measured against max(|want|, 1e-2 max|want|) as in nnops_spec; float32 outputs (the norm's
-- statistics and weight gradients) keep float32 tolerances. Run under both kernel classes (scripts/run-specs.sh).
local lunet = require "lunet"
local core = lunet.core
local nn, ops = core.nn, core.ops

local HALF_REL = 1e-3

local function rand_table(n, seed, scale, offset)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = ((x / 2147483648) * 2 - 1) * (scale or 1) + (offset or 0)
  end
  return t
end

-- a float16 device tensor from a Lua list (rounded on the host) and the values it holds
local function h16(flat, shape)
  local t = lunet.tensor(flat, { shape = shape, dtype = "f16" })
  return t:to_device(), t:flat()
end
local function f32(flat, shape) return lunet.tensor(flat, { shape = shape, dtype = "f32" }):to_device() end
local function poisoned(shape, dtype)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  local t = {}
  for i = 1, n do t[i] = 0 / 0 end
  return lunet.tensor(t, { shape = shape, dtype = dtype or "f16" }):to_device()
end

local assert_close = require("spec.support.common").assert_close

describe("float16 activation storage", function()
  it("LeakyReLU forward and backward", function()
    local n = 1003 -- not a multiple of 4: no vector path hides a tail
    local x, xv = h16(rand_table(n, 3, 4), { n })
    local y = poisoned({ n })
    nn.lrelu_fwd(y, x, 0.01)
    assert.are.equal("f16", y.dtype)
    local want = {}
    for i = 1, n do want[i] = xv[i] > 0 and xv[i] or 0.01 * xv[i] end
    assert_close(want, y:flat(), HALF_REL, "y")
    local yv = y:flat()
    local dy, dyv = h16(rand_table(n, 5, 2), { n })
    local dx = poisoned({ n })
    nn.lrelu_bwd(dx, y, dy, 0.01)
    for i = 1, n do want[i] = yv[i] > 0 and dyv[i] or 0.01 * dyv[i] end
    assert_close(want, dx:flat(), HALF_REL, "dx")
    -- in place, as the network runs it
    nn.lrelu_fwd(x, x, 0.01)
    assert.are.same(yv, x:flat())
    -- dtypes must agree
    assert.has_error(function() nn.lrelu_fwd(f32(xv, { n }), y, 0.01) end)
  end)

  it("concat and split (with accumulation) move float16 channels", function()
    local N, A, B, S = 2, 3, 2, 37
    local a, av = h16(rand_table(N * A * S, 7, 3), { N, A, S })
    local b, bv = h16(rand_table(N * B * S, 9, 3), { N, B, S })
    local out = poisoned({ N, A + B, S })
    nn.concat(out, a, b)
    local o, want = out:flat(), {}
    for n = 0, N - 1 do
      for c = 0, A + B - 1 do
        for s = 1, S do
          want[#want + 1] = c < A and av[(n * A + c) * S + s] or bv[(n * B + c - A) * S + s]
        end
      end
    end
    assert.are.same(want, o) -- a copy is exact
    local da, db = h16(rand_table(N * A * S, 11), { N, A, S })
    local dav = da:flat()
    local dbo = poisoned({ N, B, S })
    nn.split(out, da, dbo, true)
    local got = da:flat()
    local wa = {}
    for i = 1, #dav do wa[i] = dav[i] + av[i] end
    assert_close(wa, got, HALF_REL, "da (accumulated)")
  end)

  for _, case in ipairs { { "rows of 4096 (several chunks)", 2, 3, { 16, 16, 16 } },
                          { "odd rows (vector tails)", 2, 2, { 5, 7, 3 } },
                          { "two rows of 9", 1, 2, { 1, 1, 9 } } } do
    it("instance norm forward (+ LeakyReLU) and backward, " .. case[1], function()
      local N, C, sp = case[2], case[3], case[4]
      local S = sp[1] * sp[2] * sp[3]
      local shape = { N, C, sp[1], sp[2], sp[3] }
      -- a large mean against a small spread, as conv outputs have
      local x, xv = h16(rand_table(N * C * S, 13, 2, 3), shape)
      local wv, bv = rand_table(C, 17, 1, 1), rand_table(C, 19, 0.5)
      local w, b = f32(wv, { C }), f32(bv, { C })
      local wf, bf = w:flat(), b:flat()
      local mu, is = {}, {}
      for r = 0, N * C - 1 do
        local s1, s2 = 0, 0
        for s = 1, S do s1 = s1 + xv[r * S + s] end
        local m = s1 / S
        for s = 1, S do s2 = s2 + (xv[r * S + s] - m) ^ 2 end
        mu[r + 1], is[r + 1] = m, 1 / math.sqrt(s2 / S + 1e-5)
      end
      for _, slope in ipairs { false, 0.01 } do
        local y, mean, invstd = poisoned(shape), poisoned({ N * C }, "f32"), poisoned({ N * C }, "f32")
        nn.instnorm_fwd(y, mean, invstd, x, w, b, 1e-5, slope or nil)
        local want = {}
        for r = 0, N * C - 1 do
          local c = r % C + 1
          for s = 1, S do
            local v = (xv[r * S + s] - mu[r + 1]) * is[r + 1] * wf[c] + bf[c]
            if slope and v <= 0 then v = v * slope end
            want[r * S + s] = v
          end
        end
        assert_close(want, y:flat(), HALF_REL, "y")
        assert_close(mu, mean:flat(), 1e-5, "mean")
        assert_close(is, invstd:flat(), 1e-4, "invstd")
      end
      local y, mean, invstd = poisoned(shape), poisoned({ N * C }, "f32"), poisoned({ N * C }, "f32")
      nn.instnorm_fwd(y, mean, invstd, x, w, b, 1e-5)
      local dy, dyv = h16(rand_table(N * C * S, 23, 1), shape)
      local dx, dw, db = poisoned(shape), poisoned({ C }, "f32"), poisoned({ C }, "f32")
      nn.instnorm_bwd(x, w, mean, invstd, dy, dx, dw, db)
      -- the norm's backward in float64 for output gradient values g: dx, dweight, dbias
      local function bwd_ref(g)
        local rdx, rdw, rdb = {}, {}, {}
        for c = 1, C do rdw[c], rdb[c] = 0, 0 end
        for r = 0, N * C - 1 do
          local c = r % C + 1
          local sdy, sdyx = 0, 0
          for s = 1, S do
            local xh = (xv[r * S + s] - mu[r + 1]) * is[r + 1]
            sdy = sdy + g[r * S + s]
            sdyx = sdyx + g[r * S + s] * xh
          end
          rdb[c], rdw[c] = rdb[c] + sdy, rdw[c] + sdyx
          for s = 1, S do
            local xh = (xv[r * S + s] - mu[r + 1]) * is[r + 1]
            rdx[r * S + s] = wf[c] * is[r + 1] * (g[r * S + s] - sdy / S - xh * sdyx / S)
          end
        end
        return rdx, rdw, rdb
      end
      local wdx, wdw, wdb = bwd_ref(dyv)
      assert_close(wdx, dx:flat(), HALF_REL, "dx")
      assert_close(wdw, dw:flat(), 1e-4, "dweight")
      assert_close(wdb, db:flat(), 1e-4, "dbias")
      -- dx in place over dy, as the network runs it
      nn.instnorm_bwd(x, w, mean, invstd, dy, dy, nil, nil)
      assert_close(wdx, dy:flat(), HALF_REL, "dx in place")
      -- with the LeakyReLU's backward folded in (dy is the gradient of ya = lrelu(norm(x)), read through its
      -- rule): several rows whose length is not a multiple of 8 (the odd case) are where PoCL once crashed
      local ya = poisoned(shape)
      nn.instnorm_fwd(ya, mean, invstd, x, w, b, 1e-5, 0.01)
      local yav = ya:flat()
      local g, gv = h16(rand_table(N * C * S, 29, 1), shape)
      local gw, gb = poisoned({ C }, "f32"), poisoned({ C }, "f32")
      nn.instnorm_lrelu_bwd(x, w, mean, invstd, ya, 0.01, g, g, gw, gb)
      local d = {}
      for i = 1, #gv do d[i] = yav[i] > 0 and gv[i] or 0.01 * gv[i] end
      local fdx, fdw, fdb = bwd_ref(d)
      assert_close(fdx, g:flat(), HALF_REL, "dx (LeakyReLU folded in)")
      assert_close(fdw, gw:flat(), 1e-4, "dweight (LeakyReLU folded in)")
      assert_close(fdb, gb:flat(), 1e-4, "dbias (LeakyReLU folded in)")
    end)
  end
end)
