-- Network ops (csrc/ops/nn.h) against float64 references: PyTorch / nnunetv2 fixtures
-- (scripts/fixtures/make_nnops_fixtures.py) and double-precision Lua references, plus central finite
-- differences on tiny shapes. Every output is poisoned with NaN before the op runs.
local lunet = require "lunet"
local cjson = require "cjson"
local core = lunet.core
local nn, ops = core.nn, core.ops

local FIX = "spec/fixtures/nnops/"
local function fix(name) return lunet.io.npy.read(FIX .. name .. ".npy") end
local function dfix(name) return fix(name):to_device() end
local meta = (function()
  local f = assert(io.open(FIX .. "meta.json")); local s = f:read("a"); f:close(); return cjson.decode(s)
end)()

local function numel(shape) local n = 1; for _, s in ipairs(shape) do n = n * s end; return n end
local function poisoned(shape) local t = core.zeros(shape, "f32", true); ops.fill(t, 0 / 0); return t end
local function poisoned_i32(shape)
  local t = {}
  for i = 1, numel(shape) do t[i] = -7 end
  return lunet.tensor(t, {shape = shape, dtype = "i32"}):to_device()
end
local function dev(flat, shape, dtype) return lunet.tensor(flat, {shape = shape, dtype = dtype or "f32"}):to_device() end

local function rand_table(n, seed, scale, offset)
  local t, x = {}, seed
  for i = 1, n do
    x = (x * 1103515245 + 12345) % 2147483648
    t[i] = ((x / 2147483648) * 2 - 1) * (scale or 1) + (offset or 0)
  end
  return t
end

-- Relative error <= rel per element, measured against max(|want|, 1e-2 * max|want|): elements near
-- zero (cancellation in a gradient) are judged on the tensor's scale, where float32 rounding lives.
local assert_close = require("spec.support.common").assert_close

describe("instance norm", function()
  for _, case in ipairs({"in3d", "in2d"}) do
    it(case .. ": forward, mean/invstd and all gradients match torch float64", function()
      local x, w, b, dy = dfix(case .. "_x"), dfix(case .. "_w"), dfix(case .. "_b"), dfix(case .. "_dy")
      local N, C = x.shape[1], x.shape[2]
      local y, mean, invstd = poisoned(x.shape), poisoned({N * C}), poisoned({N * C})
      nn.instnorm_fwd(y, mean, invstd, x, w, b, 1e-5)
      assert_close(fix(case .. "_y"):flat(), y:flat(), 1e-4, "y")
      assert_close(fix(case .. "_mean"):flat(), mean:flat(), 1e-5, "mean")
      assert_close(fix(case .. "_invstd"):flat(), invstd:flat(), 1e-4, "invstd")
      local dx, dw, db = poisoned(x.shape), poisoned({C}), poisoned({C})
      nn.instnorm_bwd(x, w, mean, invstd, dy, dx, dw, db)
      assert_close(fix(case .. "_dx"):flat(), dx:flat(), 1e-4, "dx")
      assert_close(fix(case .. "_dw"):flat(), dw:flat(), 1e-4, "dweight")
      assert_close(fix(case .. "_db"):flat(), db:flat(), 1e-4, "dbias")
      -- fused LeakyReLU, in place (y aliases x)
      local xx = x:clone()
      nn.instnorm_fwd(xx, mean, invstd, xx, w, b, 1e-5, 0.01)
      assert_close(fix(case .. "_ylrelu"):flat(), xx:flat(), 1e-4, "y lrelu")
      -- accumulate adds onto existing weight gradients; dx may alias dy
      local dw2, db2 = dw:clone(), db:clone()
      local g = dy:clone()
      nn.instnorm_bwd(x, w, mean, invstd, g, g, dw2, db2, true)
      assert_close(fix(case .. "_dx"):flat(), g:flat(), 1e-4, "dx in place")
      local wd, bd = fix(case .. "_dw"):flat(), fix(case .. "_db"):flat()
      for i = 1, C do wd[i] = 2 * wd[i]; bd[i] = 2 * bd[i] end
      assert_close(wd, dw2:flat(), 1e-4, "dweight accumulated")
      assert_close(bd, db2:flat(), 1e-4, "dbias accumulated")
    end)
  end

  it("fuses LeakyReLU's backward into its backward: the same bits as lrelu_bwd then instnorm_bwd", function()
    for _, case in ipairs({"in3d", "in2d"}) do
      local x, w, b, dy = dfix(case .. "_x"), dfix(case .. "_w"), dfix(case .. "_b"), dfix(case .. "_dy")
      local N, C = x.shape[1], x.shape[2]
      local ya, mean, invstd = poisoned(x.shape), poisoned({N * C}), poisoned({N * C})
      nn.instnorm_fwd(ya, mean, invstd, x, w, b, 1e-5, 0.01)
      -- two passes: the LeakyReLU gradient written, then the norm's backward
      local d, dw, db = poisoned(x.shape), poisoned({C}), poisoned({C})
      nn.lrelu_bwd(d, ya, dy, 0.01)
      nn.instnorm_bwd(x, w, mean, invstd, d, d, dw, db)
      -- one: dy read through the LeakyReLU's rule, dx written over it (in place, as the network runs it)
      local g, dw1, db1 = dy:clone(), poisoned({C}), poisoned({C})
      nn.instnorm_lrelu_bwd(x, w, mean, invstd, ya, 0.01, g, g, dw1, db1)
      assert.are.same(d:flat(), g:flat())
      assert.are.same(dw:flat(), dw1:flat())
      assert.are.same(db:flat(), db1:flat())
      assert.has_error(function() nn.instnorm_lrelu_bwd(x, w, mean, invstd, dfix(case .. "_w"), 0.01, g, g) end)
    end
  end)

  it("gradients agree with central finite differences (tiny shape, odd sizes)", function()
    local shape = {2, 2, 3, 1, 5}
    local n = numel(shape)
    local xv, dyv = rand_table(n, 7, 1.5, 0.3), rand_table(n, 8)
    local wv, bv = {1.3, -0.7}, {0.2, -0.4}
    local function L(xt, wt, bt)
      local y, m, s = poisoned(shape), poisoned({4}), poisoned({4})
      nn.instnorm_fwd(y, m, s, dev(xt, shape), dev(wt, {2}), dev(bt, {2}))
      local acc, yf = 0, y:flat()
      for i = 1, n do acc = acc + yf[i] * dyv[i] end
      return acc
    end
    local x, w = dev(xv, shape), dev(wv, {2})
    local y, m, s = poisoned(shape), poisoned({4}), poisoned({4})
    nn.instnorm_fwd(y, m, s, x, w, dev(bv, {2}))
    local dx, dw, db = poisoned(shape), poisoned({2}), poisoned({2})
    nn.instnorm_bwd(x, w, m, s, dev(dyv, shape), dx, dw, db)
    local h = 1e-2
    local gx, gw, gb = dx:flat(), dw:flat(), db:flat()
    for _, i in ipairs({1, 4, 9, 15, 22, 30}) do
      local p, q = {table.unpack(xv)}, {table.unpack(xv)}
      p[i] = p[i] + h; q[i] = q[i] - h
      local fd = (L(p, wv, bv) - L(q, wv, bv)) / (2 * h)
      assert(math.abs(fd - gx[i]) <= 2e-3 + 1e-2 * math.abs(fd), ("dx[%d]: fd %g analytic %g"):format(i, fd, gx[i]))
    end
    for c = 1, 2 do
      local p, q = {table.unpack(wv)}, {table.unpack(wv)}
      p[c] = p[c] + h; q[c] = q[c] - h
      local fd = (L(xv, p, bv) - L(xv, q, bv)) / (2 * h)
      assert(math.abs(fd - gw[c]) <= 2e-3 + 1e-2 * math.abs(fd), ("dw[%d]: fd %g analytic %g"):format(c, fd, gw[c]))
      p, q = {table.unpack(bv)}, {table.unpack(bv)}
      p[c] = p[c] + h; q[c] = q[c] - h
      fd = (L(xv, wv, p) - L(xv, wv, q)) / (2 * h)
      assert(math.abs(fd - gb[c]) <= 2e-3 + 1e-2 * math.abs(fd), ("db[%d]: fd %g analytic %g"):format(c, fd, gb[c]))
    end
  end)

  -- float64 reference for a larger row (S = 4100: several chunks per row on the GPU path, uneven last one)
  local function instnorm_ref(xv, dyv, wv, bv, N, C, S)
    local y, dx, dw, db = {}, {}, {}, {}
    for c = 1, C do dw[c], db[c] = 0, 0 end
    for r = 0, N * C - 1 do
      local c = r % C + 1
      local m, v = 0, 0
      for i = 1, S do m = m + xv[r * S + i] end
      m = m / S
      for i = 1, S do v = v + (xv[r * S + i] - m) ^ 2 end
      local is = 1 / math.sqrt(v / S + 1e-5)
      local sg, sgx = 0, 0
      for i = 1, S do
        local j = r * S + i
        local xh = (xv[j] - m) * is
        y[j] = xh * wv[c] + bv[c]
        sg = sg + dyv[j]; sgx = sgx + dyv[j] * xh
      end
      for i = 1, S do
        local j = r * S + i
        dx[j] = wv[c] * is * (dyv[j] - sg / S - (xv[j] - m) * is * sgx / S)
      end
      dw[c] = dw[c] + sgx; db[c] = db[c] + sg
    end
    return y, dx, dw, db
  end

  it("both kernel paths (float8 rows for CPUs, chunked work-groups for GPUs) match a float64 reference", function()
    -- the path is chosen per device class; LUNET_INSTNORM (tunable instnorm) forces one, so a child process runs the other
    local N, C, S = 2, 3, 4100
    local gen = [[
      local function rand_table(n, seed, scale, offset)
        local t, x = {}, seed
        for i = 1, n do
          x = (x * 1103515245 + 12345) % 2147483648
          t[i] = ((x / 2147483648) * 2 - 1) * (scale or 1) + (offset or 0)
        end
        return t
      end
      local lunet = require "lunet"; local nn = lunet.core.nn; local z = lunet.core.zeros
      local N, C, S = 2, 3, 4100
      local function dev(t, shape) return lunet.tensor(t, {shape = shape}):to_device() end
      local x, dy = dev(rand_table(N * C * S, 31, 2, 5), {N, C, S}), dev(rand_table(N * C * S, 32), {N, C, S})
      local w, b = dev({0.5, 1.5, -1}, {C}), dev({0.1, -0.2, 0.3}, {C})
      local y, m, s = z({N, C, S}, "f32", true), z({N * C}, "f32", true), z({N * C}, "f32", true)
      nn.instnorm_fwd(y, m, s, x, w, b)
      local dx, dw, db = z({N, C, S}, "f32", true), z({C}, "f32", true), z({C}, "f32", true)
      nn.instnorm_bwd(x, w, m, s, dy, dx, dw, db)
      RESULT = {x = x, dy = dy, y = y, dx = dx, dw = dw, db = db}
    ]]
    local other = core.tune.class() == "cpu" and "groups" or "rows" -- the class this process runs
    local tmp = os.tmpname()
    local child = gen .. ("for k, v in pairs(RESULT) do lunet.io.npy.write(%q .. k .. '.npy', v:to_host()) end print('DONE')"):format(tmp)
    local lua = os.getenv("LUNET_LUA") or "lua5.4"
    local p = io.popen(("LUNET_INSTNORM=%s %s -e %q 2>&1"):format(other, lua, child))
    local out = p:read("a")
    p:close()
    assert(out:match("DONE"), "child failed: " .. out)
    load(gen)()
    local R = RESULT
    local xv, dyv = R.x:flat(), R.dy:flat()
    local y, dx, dw, db = instnorm_ref(xv, dyv, {0.5, 1.5, -1}, {0.1, -0.2, 0.3}, N, C, S)
    for _, path in ipairs({"this", other}) do
      local got = {}
      for _, k in ipairs({"y", "dx", "dw", "db"}) do
        if path == "this" then got[k] = R[k]:flat()
        else got[k] = lunet.io.npy.read(tmp .. k .. ".npy"):flat(); os.remove(tmp .. k .. ".npy") end
      end
      assert_close(y, got.y, 1e-4, path .. " path y")
      assert_close(dx, got.dx, 1e-4, path .. " path dx")
      assert_close(dw, got.dw, 1e-4, path .. " path dweight")
      assert_close(db, got.db, 1e-4, path .. " path dbias")
    end
    for _, k in ipairs({"x", "dy"}) do os.remove(tmp .. k .. ".npy") end
    os.remove(tmp)
  end)

  it("rejects mismatched weight sizes with a message naming the argument", function()
    local x = poisoned({1, 3, 4})
    local ok, err = pcall(nn.instnorm_fwd, poisoned({1, 3, 4}), poisoned({3}), poisoned({3}), x, poisoned({2}), poisoned({3}))
    assert.is_false(ok)
    assert.matches("weight", err)
  end)
end)

describe("activations", function()
  for _, n in ipairs({1000 + 37, 1000 + 36}) do -- scalar kernels, and float4 kernels when n % 4 == 0
  local xv, gv = rand_table(n, 3), rand_table(n, 4)
  for _, slope in ipairs({0.01, 0}) do
    it(("leaky relu slope %g, %d elements: forward, in place, backward from the output"):format(slope, n), function()
      local x, y = dev(xv, {n}), poisoned({n})
      nn.lrelu_fwd(y, x, slope)
      local want, dwant = {}, {}
      for i = 1, n do
        want[i] = xv[i] > 0 and xv[i] or slope * xv[i]
        dwant[i] = xv[i] > 0 and gv[i] or slope * gv[i]
      end
      assert_close(want, y:flat(), 1e-6, "y")
      nn.lrelu_fwd(x, x, slope) -- in place
      assert_close(want, x:flat(), 1e-6, "y in place")
      local dx = poisoned({n})
      nn.lrelu_bwd(dx, x, dev(gv, {n}), slope)
      assert_close(dwant, dx:flat(), 1e-6, "dx")
    end)
  end
  end
  local n = 1000 + 37
  local xv = rand_table(n, 3)

  it("sigmoid", function()
    local y = poisoned({n})
    nn.sigmoid(y, dev(xv, {n}))
    local want = {}
    for i = 1, n do want[i] = 1 / (1 + math.exp(-xv[i])) end
    assert_close(want, y:flat(), 1e-6, "sigmoid")
  end)
end)

describe("channel concat and split", function()
  for _, S in ipairs({37, 36}) do -- scalar and float4 kernels
  it(("concat puts a before b; split inverts it and can accumulate (S = %d)"):format(S), function()
    local N, Ca, Cb = 2, 3, 2
    local a, b = dev(rand_table(N * Ca * S, 5), {N, Ca, S}), dev(rand_table(N * Cb * S, 6), {N, Cb, S})
    local av, bv = a:flat(), b:flat() -- float32 values
    local out = poisoned({N, Ca + Cb, S})
    nn.concat(out, a, b)
    local want = {}
    for n = 0, N - 1 do
      for c = 0, Ca - 1 do for s = 1, S do want[#want + 1] = av[(n * Ca + c) * S + s] end end
      for c = 0, Cb - 1 do for s = 1, S do want[#want + 1] = bv[(n * Cb + c) * S + s] end end
    end
    assert.same(want, out:flat())
    local da, db = poisoned({N, Ca, S}), poisoned({N, Cb, S})
    nn.split(out, da, db)
    assert.same(av, da:flat())
    assert.same(bv, db:flat())
    nn.split(out, nil, db, true) -- db += in[:, Ca:]
    local twice = {}
    for i, v in ipairs(bv) do twice[i] = 2 * v end
    assert_close(twice, db:flat(), 1e-7, "accumulated split")
    local ok, err = pcall(nn.concat, poisoned({N, 4, S}), a, b)
    assert.is_false(ok)
    assert.matches("cannot hold", err)
  end)
  end

  it("copy_channels copies a slice at an offset and leaves the rest alone", function()
    local dst = dev(rand_table(2 * 5 * 7, 9), {2, 5, 7})
    local before = dst:flat()
    local src = dev(rand_table(2 * 3 * 7, 10), {2, 3, 7})
    local sv = src:flat()
    nn.copy_channels(dst, 3, src, 1, 2)
    local got = dst:flat()
    for n = 0, 1 do
      for c = 0, 4 do
        for s = 1, 7 do
          local i = (n * 5 + c) * 7 + s
          local want = (c >= 3) and sv[(n * 3 + c - 3 + 1) * 7 + s] or before[i]
          assert.equal(want, got[i])
        end
      end
    end
  end)
end)

describe("softmax family", function()
  for _, S in ipairs({67, 64}) do -- one voxel per work-item, and 8 (float8) on CPUs when S % 8 == 0
  local N, C = 2, 5
  local xv, gv = rand_table(N * C * S, 11, 4), rand_table(N * C * S, 12)
  local function ref()
    local p, lp = {}, {}
    for n = 0, N - 1 do
      for s = 1, S do
        local m = -math.huge
        for c = 0, C - 1 do m = math.max(m, xv[(n * C + c) * S + s]) end
        local sum = 0
        for c = 0, C - 1 do sum = sum + math.exp(xv[(n * C + c) * S + s] - m) end
        for c = 0, C - 1 do
          local i = (n * C + c) * S + s
          p[i] = math.exp(xv[i] - m) / sum
          lp[i] = xv[i] - m - math.log(sum)
        end
      end
    end
    return p, lp
  end

  it(("softmax and log-softmax forward and backward match a float64 reference (S = %d)"):format(S), function()
    local p, lp = ref()
    local x = dev(xv, {N, C, S})
    local y, ly = poisoned({N, C, S}), poisoned({N, C, S})
    nn.softmax(y, x); nn.log_softmax(ly, x)
    assert_close(p, y:flat(), 1e-5, "softmax")
    assert_close(lp, ly:flat(), 1e-5, "log_softmax")
    local dx, dlx = poisoned({N, C, S}), poisoned({N, C, S})
    nn.softmax_bwd(dx, y, dev(gv, {N, C, S}))
    nn.log_softmax_bwd(dlx, ly, dev(gv, {N, C, S}))
    local want, lwant = {}, {}
    for n = 0, N - 1 do
      for s = 1, S do
        local dot, sg = 0, 0
        for c = 0, C - 1 do local i = (n * C + c) * S + s; dot = dot + p[i] * gv[i]; sg = sg + gv[i] end
        for c = 0, C - 1 do
          local i = (n * C + c) * S + s
          want[i] = p[i] * (gv[i] - dot)
          lwant[i] = gv[i] - p[i] * sg
        end
      end
    end
    assert_close(want, dx:flat(), 1e-4, "softmax_bwd")
    assert_close(lwant, dlx:flat(), 1e-4, "log_softmax_bwd")
  end)
  end
end)

describe("nnU-Net losses (fused loss + dlogits)", function()
  local cases = {"ce_plain", "ce_batch_ignore", "ce_2d_absent", "ce_all_ignored", "bce_plain", "bce_batch_ignore"}
  local function opts_of(m)
    local o = {regions = m.regions, batch_dice = m.batch_dice}
    if m.ignore_label ~= cjson.null then
      if m.regions then o.has_ignore = true else o.ignore_label = m.ignore_label end
    end
    return o
  end
  for _, case in ipairs(cases) do
    it(case .. ": loss and gradient equal nnunetv2's loss class under autograd", function()
      local m = meta[case]
      local z, t = dfix(case .. "_logits"), dfix(case .. "_target")
      local dz = poisoned(z.shape)
      local loss = nn.dc_ce_loss(z, t, opts_of(m), dz)
      assert(math.abs(loss - m.loss) <= 1e-4 * math.abs(m.loss), ("loss %.9g, nnunetv2 %.9g"):format(loss, m.loss))
      assert_close(fix(case .. "_dlogits"):flat(), dz:flat(), 1e-4, "dlogits")
      -- float targets give the same result; loss-only evaluation needs no gradient buffer
      local tf = t:to_host():astype("f32"):to_device()
      local loss2 = nn.dc_ce_loss(z, tf, opts_of(m))
      assert(math.abs(loss2 - loss) <= 1e-6 * math.max(1, math.abs(loss)))
      -- uint8 targets (how training batches upload their labels) give the same bits as int32
      local tu = t:to_host():astype("u8"):to_device()
      local dzu = poisoned(z.shape)
      local loss3 = nn.dc_ce_loss(z, tu, opts_of(m), dzu)
      assert.are.equal(loss, loss3)
      assert.are.same(dz:flat(), dzu:flat())
    end)
  end

  it("deep-supervision scale multiplies loss and gradient; weights split CE and Dice", function()
    local z, t = dfix("ce_plain_logits"), dfix("ce_plain_target")
    local dz1, dz2 = poisoned(z.shape), poisoned(z.shape)
    local l1, terms = nn.dc_ce_loss(z, t, {}, dz1)
    local l2 = nn.dc_ce_loss(z, t, {scale = 0.25, weight_ce = 2, weight_dice = 0.5}, dz2)
    assert(math.abs(terms.ce + terms.dice - l1) < 1e-9)
    assert(terms.dice < 0 and terms.dice >= -1)
    local want = 0.25 * (2 * terms.ce + 0.5 * terms.dice)
    assert(math.abs(l2 - want) <= 1e-6 * math.abs(want))
    -- gradient linearity: 0.25 * (2 g_ce + 0.5 g_dc) from the separate terms
    local dce, ddc = poisoned(z.shape), poisoned(z.shape)
    nn.dc_ce_loss(z, t, {weight_dice = 0}, dce)
    nn.dc_ce_loss(z, t, {weight_ce = 0}, ddc)
    local a, b, g = dce:flat(), ddc:flat(), {}
    for i = 1, #a do g[i] = 0.25 * (2 * a[i] + 0.5 * b[i]) end
    assert_close(g, dz2:flat(), 1e-4, "scaled gradient")
  end)

  for _, mode in ipairs({{regions = false, batch_dice = false, ignore_label = 3},
                         {regions = false, batch_dice = true},
                         {regions = true, batch_dice = false, has_ignore = true},
                         {regions = true, batch_dice = true}}) do
    local name = ("%s batch_dice=%s ignore=%s"):format(mode.regions and "regions" or "labels", tostring(mode.batch_dice),
                                                     tostring(mode.ignore_label or mode.has_ignore or false))
    it("central finite differences of the loss match dlogits: " .. name, function()
      local N, C, S = 2, 3, 5
      local zv = rand_table(N * C * S, 21, 1.5)
      local tv, tshape = {}, nil
      if mode.regions then
        local TC = C + (mode.has_ignore and 1 or 0)
        local r = rand_table(N * TC * S, 22)
        for i = 1, N * TC * S do tv[i] = r[i] > 0.1 and 1 or 0 end
        tshape = {N, TC, S}
      else
        local r = rand_table(N * S, 23)
        for i = 1, N * S do tv[i] = math.floor((r[i] + 1) * 2) end -- 0..3 (3 = ignore when set)
        if not mode.ignore_label then for i = 1, #tv do tv[i] = tv[i] % 3 end end
        tshape = {N, 1, S}
      end
      local t = dev(tv, tshape, mode.regions and "f32" or "i32")
      local dz = poisoned({N, C, S})
      nn.dc_ce_loss(dev(zv, {N, C, S}), t, mode, dz)
      local g = dz:flat()
      local h = 1e-2
      for i = 1, N * C * S do
        local p, q = {table.unpack(zv)}, {table.unpack(zv)}
        p[i] = p[i] + h; q[i] = q[i] - h
        local fd = (nn.dc_ce_loss(dev(p, {N, C, S}), t, mode) - nn.dc_ce_loss(dev(q, {N, C, S}), t, mode)) / (2 * h)
        assert(math.abs(fd - g[i]) <= 1e-3 + 1e-2 * math.abs(fd), ("dlogits[%d]: fd %.6g analytic %.6g"):format(i, fd, g[i]))
      end
    end)
  end

  -- The training step finishes the loss on the device (kernel loss_finish) instead of the host's double
  -- arithmetic after a blocking read; both must give nnunetv2's loss and the same gradient. Tolerances: the
  -- sums' order differs (a work-group tree against a serial loop), the coefficients are floats either way.
  for _, case in ipairs(cases) do
    for _, sc in ipairs({1, 0.25}) do
      it(("%s, scale %g: the device finish equals the host finish (loss 1e-6, dlogits 1e-6)"):format(case, sc), function()
        local m = meta[case]
        local z, t = dfix(case .. "_logits"), dfix(case .. "_target")
        local o = opts_of(m)
        o.scale = sc
        local dh, dd = poisoned(z.shape), poisoned(z.shape)
        local lh = nn.dc_ce_loss(z, t, o, dh)
        o.device_finish = true
        local ld = nn.dc_ce_loss(z, t, o, dd)
        assert(math.abs(ld - lh) <= 1e-6 * math.max(1, math.abs(lh)), ("device %.9g host %.9g"):format(ld, lh))
        assert(math.abs(ld - sc * m.loss) <= 1e-4 * math.abs(m.loss), ("device %.9g nnunetv2 %.9g"):format(ld, m.loss))
        assert_close(dh:flat(), dd:flat(), 1e-6, "dlogits")
        -- batch Dice on, do_bg on: the other group layouts
        o.batch_dice, o.do_bg = not o.batch_dice, true
        local dh2, dd2 = poisoned(z.shape), poisoned(z.shape)
        o.device_finish = false
        local lh2 = nn.dc_ce_loss(z, t, o, dh2)
        o.device_finish = true
        local ld2 = nn.dc_ce_loss(z, t, o, dd2)
        assert(math.abs(ld2 - lh2) <= 1e-6 * math.max(1, math.abs(lh2)), ("device %.9g host %.9g"):format(ld2, lh2))
        assert_close(dh2:flat(), dd2:flat(), 1e-6, "dlogits (batch Dice / do_bg flipped)")
      end)
    end
  end

  it("rejects a target that does not fit the logits", function()
    local ok, err = pcall(nn.dc_ce_loss, poisoned({2, 3, 4}), dev({0, 0, 0, 0}, {1, 1, 4}, "i32"), {})
    assert.is_false(ok)
    assert.matches("does not fit", err)
  end)
end)

describe("deep supervision", function()
  it("downsampled targets equal batchgeneratorsv2's DownsampleSegForDSTransform (3-D and 2-D)", function()
    local s = fix("ds_seg").shape
    local seg5 = fix("ds_seg"):reshape({1, s[1], s[2], s[3], s[4]}):to_device()
    for i, sc in ipairs(meta.ds_scales) do
      local want = fix("ds_out" .. (i - 1))
      local shape = nn.ds_shape(seg5.shape, sc)
      assert.same({1, table.unpack(want.shape)}, shape)
      local out = poisoned_i32(shape)
      nn.ds_downsample(out, seg5)
      assert.same(want:flat(), out:flat())
    end
    local seg2 = fix("ds2_seg") -- (C, 1, Y, X) -> (N=1, C, Y, X) 4-D tensors
    local s2 = seg2.shape
    local seg4 = seg2:reshape({1, s2[1], s2[3], s2[4]}):to_device()
    for i, sc in ipairs({{0.5, 0.5}, {0.25, 0.25}}) do
      local want = fix("ds2_out" .. (i - 1))
      local shape = nn.ds_shape(seg4.shape, sc)
      assert.same({1, want.shape[1], want.shape[3], want.shape[4]}, shape)
      local out = poisoned_i32(shape)
      nn.ds_downsample(out, seg4)
      assert.same(want:flat(), out:flat())
    end
  end)

  it("float32, u8 and i16 targets downsample like int32", function()
    local seg = fix("ds_seg")
    local s = seg.shape
    local want = fix("ds_out2"):flat()
    local shape = nn.ds_shape({1, s[1], s[2], s[3], s[4]}, meta.ds_scales[3])
    for _, dt in ipairs({"f32", "u8", "i16"}) do
      local src = seg:astype(dt):reshape({1, s[1], s[2], s[3], s[4]}):to_device()
      local fill = {}
      for i = 1, numel(shape) do fill[i] = 99 end
      local out = lunet.tensor(fill, {shape = shape, dtype = dt}):to_device()
      nn.ds_downsample(out, src)
      assert.same(want, out:flat())
    end
  end)

  it("loss weights are nnU-Net's (1/2^i, last 0, normalised)", function()
    local w = nn.ds_weights(5)
    local want = {8 / 15, 4 / 15, 2 / 15, 1 / 15, 0}
    for i = 1, 5 do assert(math.abs(w[i] - want[i]) < 1e-12) end
    w = nn.ds_weights(3)
    assert(math.abs(w[1] - 2 / 3) < 1e-12 and math.abs(w[2] - 1 / 3) < 1e-12 and w[3] == 0)
  end)
end)

describe("SGD with Nesterov momentum", function()
  it("three steps equal torch.optim.SGD(nesterov=True, momentum 0.99, weight_decay 3e-5)", function()
    local p = dfix("sgd_p0")
    local n = p.shape[1]
    local buf = core.zeros({n}, "f32", true)
    local grads = fix("sgd_grads"):flat()
    for s = 0, 2 do
      local g = {}
      for i = 1, n do g[i] = grads[s * n + i] end
      nn.sgd_nesterov(p, dev(g, {n}), buf, 0.01, 0.99, 3e-5)
    end
    assert_close(fix("sgd_p3"):flat(), p:flat(), 1e-4, "param")
    assert_close(fix("sgd_buf3"):flat(), buf:flat(), 1e-4, "momentum")
  end)

  it("weight decay and momentum follow the torch update rule (float64 reference, strong decay)", function()
    local n = 257
    local p0, lr, mu, wd = rand_table(n, 41), 0.1, 0.9, 0.05
    local p = dev(p0, {n})
    local pv = p:flat() -- float32 start values
    local buf = core.zeros({n}, "f32", true)
    local bv = {}
    for i = 1, n do bv[i] = 0 end
    for step = 1, 4 do
      local g = rand_table(n, 50 + step)
      nn.sgd_nesterov(p, dev(g, {n}), buf, lr, mu, wd)
      for i = 1, n do
        local gi = g[i] + wd * pv[i]
        bv[i] = mu * bv[i] + gi
        pv[i] = pv[i] - lr * (gi + mu * bv[i])
      end
    end
    assert_close(pv, p:flat(), 1e-4, "param")
    assert_close(bv, buf:flat(), 1e-4, "momentum")
  end)
end)
