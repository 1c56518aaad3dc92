-- The device-resident tail of a training step (csrc/ops/amp.c, kernels/sgd/amp.cl): torch.amp.GradScaler's
-- dynamic loss scale, the inf/NaN skip, clip_grad_norm_ on the unscaled gradient and SGD, checked against a
-- float64 reference of the same update and against GradScaler's rules; checkpoints keep the scaler.
local lunet = require "lunet"

local F = "spec/fixtures/net/"

local function floats(s)
  local t, n = {}, #s // 4
  for i = 1, n do t[i] = string.unpack("<f", s, 4 * i - 3) end
  return t
end

local function pack(t)
  local p = {}
  for i = 1, #t do p[i] = string.pack("<f", t[i]) end
  return table.concat(p)
end

local function tiny(opts)
  return lunet.net(F .. "tiny_plans.json", "tiny2d", 2, 3, opts)
end

-- A mixed-precision network whose activations stay float32: the scaler's arithmetic compared bit for bit
-- with an fp32 network's (float16 storage changes the gradients themselves; mixed_spec covers it).
local function tiny_scaler_only(opts)
  local n = tiny(opts)
  n.core:set_half_activations(false)
  return n
end

local x = lunet.io.npy.read(F .. "tiny2d_x.npy")
local seg = lunet.io.npy.read(F .. "tiny2d_seg.npy")

-- the options of net:train_step for the fixture batch
local function opts(net) return net:train_opts { data = x, target = seg } end

local tmpdir = os.tmpname()
os.remove(tmpdir)
os.execute("mkdir -p " .. tmpdir)

describe("grad scaler", function()
  it("precision: auto is fp32 on a CPU device, mixed sets GradScaler's defaults", function()
    local gpu = lunet.devices()[1].type == "gpu"
    assert.are.equal(gpu and "mixed" or "fp32", lunet.net.precision("auto", 0))
    assert.are.equal("mixed", lunet.net.precision("mixed", 0))
    assert.are.equal(gpu and "mixed" or "fp32", tiny().precision)
    assert.are.equal("fp32", tiny({ precision = "fp32" }).precision)
    local m = tiny { precision = "mixed" }
    local s = m.core:scaler()
    assert.is_true(s.enabled)
    assert.is_true(m.core:half_activations()) -- autocast's float16 storage
    assert.is_false(tiny({ precision = "fp32" }).core:half_activations())
    assert.are.equal(65536, s.scale)
    assert.are.equal(2, s.growth_factor)
    assert.are.equal(0.5, s.backoff_factor)
    assert.are.equal(2000, s.growth_interval)
    assert.are.equal(0, s.growth_tracker)
    assert.has_error(function() tiny { precision = "fp16" } end)
  end)

  it("scales the loss gradient exactly, and the update equals fp32's bit for bit and a float64 reference", function()
    local a, b = tiny { seed = 5 }, tiny_scaler_only { seed = 5, precision = "mixed" }
    local o = opts(a)
    o.grad_clip = 0.05 -- small enough that clipping is active
    local la = a.core:train_grad(x, seg, o)
    local lb = b.core:train_grad(x, seg, o)
    assert.are.equal(la, lb) -- the loss value is never scaled
    local ga, gb = floats(a.core:flat(1)), floats(b.core:flat(1))
    local nz = 0
    for i = 1, #ga do
      assert(gb[i] == ga[i] * 65536, "gradient " .. i)
      if ga[i] ~= 0 then nz = nz + 1 end
    end
    assert.is_true(nz > 100)
    -- float64 reference of unscale + clip + SGD (nesterov) from the buffers before the update
    local p0, m0 = floats(a.core:flat(0)), floats(a.core:flat(2))
    local ss = 0
    for i = 1, #ga do ss = ss + ga[i] * ga[i] end
    local norm = math.sqrt(ss)
    local coef = math.min(1, o.grad_clip / (norm + 1e-6))
    assert.is_true(coef < 0.9)
    local gna = a.core:train_update(o)
    local gnb = b.core:train_update(o)
    assert.is_true(math.abs(gna - norm) < 1e-6 * norm, ("norm %.9g vs float64 %.9g"):format(gna, norm))
    assert.are.equal(gna, gnb)
    local pa, pb = a.core:flat(0), b.core:flat(0)
    assert.are.equal(pa, pb)
    assert.are.equal(a.core:flat(2), b.core:flat(2))
    local p1, m1 = floats(pa), floats(a.core:flat(2))
    local md, mm, changed = 0, 0, 0
    -- the head of a deep-supervision output with weight 0 keeps its values (torch skips parameters without
    -- gradient): only changed entries are compared
    for i = 1, #p0 do
      local g = ga[i] * coef + o.weight_decay * p0[i]
      local mb = o.momentum * m0[i] + g
      local pe = p0[i] - o.lr * (g + o.momentum * mb)
      if p1[i] ~= p0[i] or m1[i] ~= m0[i] then
        changed = changed + 1
        md = math.max(md, math.abs(p1[i] - pe) / math.max(math.abs(pe), 1e-3))
        mm = math.max(mm, math.abs(m1[i] - mb) / math.max(math.abs(mb), 1e-6))
      end
    end
    assert.is_true(changed > 100)
    assert.is_true(md < 1e-6, "parameters vs float64: " .. md)
    assert.is_true(mm < 1e-5, "momentum vs float64: " .. mm)
    local s = b.core:scaler()
    assert.are.equal(1, s.growth_tracker)
    assert.are.equal(65536, s.scale)
    assert.is_false(s.found_inf)
    assert.is_true(math.abs(s.coef - coef / 65536) < 1e-6 * coef / 65536)
  end)

  for _, bad in ipairs { { "inf", math.huge }, { "-inf", -math.huge }, { "NaN", 0 / 0 } } do
    it("an injected " .. bad[1] .. " gradient skips the step and halves the scale", function()
      local n = tiny_scaler_only { seed = 7, precision = "mixed" }
      local o = opts(n)
      n.core:train_grad(x, seg, o)
      n.core:train_update(o) -- momentum is non-zero from here
      n.core:train_grad(x, seg, o)
      local g = floats(n.core:flat(1))
      g[17] = bad[2]
      n.core:set_flat(1, pack(g))
      local p0, m0 = n.core:flat(0), n.core:flat(2)
      local gn = n.core:train_update(o)
      assert.is_true(gn ~= gn or gn == math.huge) -- the norm of a gradient with inf/NaN, as torch reports it
      assert.are.equal(p0, n.core:flat(0))
      assert.are.equal(m0, n.core:flat(2))
      local s = n.core:scaler()
      assert.is_true(s.found_inf and s.nonfinite)
      assert.are.equal(32768, s.scale)
      assert.are.equal(0, s.growth_tracker)
      assert.are.equal(1, s.skipped)
      -- the next clean step runs with the halved scale: its loss gradient is 2^15 times fp32's
      local f = tiny { seed = 9 }
      n.core:set_flat(0, f.core:flat(0))
      n.core:train_grad(x, seg, o)
      f.core:train_grad(x, seg, o)
      local gf, gs = floats(f.core:flat(1)), floats(n.core:flat(1))
      for i = 1, #gf do assert(gs[i] == gf[i] * 32768, "gradient " .. i) end
      n.core:train_update(o)
      s = n.core:scaler()
      assert.is_false(s.found_inf)
      assert.are.equal(1, s.growth_tracker)
    end)
  end

  it("without the scaler (fp32) an inf gradient is applied, as torch without GradScaler", function()
    local n = tiny { seed = 7 }
    local o = opts(n)
    n.core:train_grad(x, seg, o)
    local g = floats(n.core:flat(1))
    g[17] = math.huge
    n.core:set_flat(1, pack(g))
    local p0 = n.core:flat(0)
    n.core:train_update(o)
    assert.are_not.equal(p0, n.core:flat(0))
    local s = n.core:scaler()
    assert.is_false(s.enabled)
    assert.is_false(s.found_inf)
    assert.is_true(s.nonfinite)
    assert.are.equal(1, s.scale)
  end)

  it("2000 clean steps in a row double the scale; an overflow restarts the count", function()
    local n = tiny { seed = 3, precision = "mixed" }
    local o = opts(n)
    o.lr = 0 -- the same gradient stays finite for every update
    n.core:train_grad(x, seg, o)
    for _ = 1, 1999 do n.core:train_update(o) end
    local s = n.core:scaler()
    assert.are.equal(65536, s.scale)
    assert.are.equal(1999, s.growth_tracker)
    n.core:train_update(o)
    s = n.core:scaler()
    assert.are.equal(131072, s.scale)
    assert.are.equal(0, s.growth_tracker)
    assert.are.equal(2000, s.steps)
    -- 1000 more clean steps, one overflow, then 1999 clean ones: no growth yet (the count restarted)
    for _ = 1, 1000 do n.core:train_update(o) end
    local g = floats(n.core:flat(1))
    local g17 = g[17]
    g[17] = math.huge
    n.core:set_flat(1, pack(g))
    n.core:train_update(o)
    assert.are.equal(65536, n.core:scaler().scale)
    g[17] = g17
    n.core:set_flat(1, pack(g))
    for _ = 1, 1999 do n.core:train_update(o) end
    s = n.core:scaler()
    assert.are.equal(65536, s.scale)
    assert.are.equal(1999, s.growth_tracker)
    n.core:train_update(o)
    assert.are.equal(131072, n.core:scaler().scale)
  end)

  it("a checkpoint keeps the scaler (nnU-Net's grad_scaler_state); resuming is bit-identical", function()
    local function steps(net, k)
      for _ = 1, k do net:train_step { data = x, target = seg } end
    end
    local tr = require("lunet.rules.default").trainer
    local rules = { trainer = setmetatable({ grad_scaler = { init_scale = 2 ^ 16, growth_factor = 2,
      backoff_factor = 0.5, growth_interval = 3 } }, { __index = tr }) }
    local a = tiny { seed = 11, precision = "mixed", rules = rules }
    steps(a, 4) -- one growth (after 3), tracker 1
    local s = a.core:scaler()
    assert.are.equal(131072, s.scale)
    assert.are.equal(1, s.growth_tracker)
    local path = tmpdir .. "/amp.pth"
    a:save(path, { current_epoch = 1 })
    local P = require("lunet.core").pickle
    local tree = P.torch_load(path)
    local gss = tree.grad_scaler_state
    assert.are.equal(131072.0, gss.scale)
    assert.are.equal(1, gss._growth_tracker)
    assert.are.equal(3, gss.growth_interval)
    assert.are.equal(2.0, gss.growth_factor)
    assert.are.equal(0.5, gss.backoff_factor)
    assert.are.same({ "scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker" }, P.keys(gss))
    local b = tiny { seed = 99, precision = "mixed", rules = rules }
    b:load(path)
    local sb = b.core:scaler()
    assert.are.equal(131072, sb.scale)
    assert.are.equal(1, sb.growth_tracker)
    steps(a, 5)
    steps(b, 5)
    assert.are.equal(a.core:flat(0), b.core:flat(0))
    assert.are.equal(a.core:flat(2), b.core:flat(2))
    local s1, s2 = a.core:scaler(), b.core:scaler()
    assert.are.equal(s1.scale, s2.scale)
    assert.are.equal(s1.growth_tracker, s2.growth_tracker)
    assert.are.equal(524288, s1.scale)
    -- an fp32 network writes None, as nnU-Net without a scaler, and ignores a file's scaler
    local f = tiny { seed = 11 }
    f:load(path)
    local fp = tmpdir .. "/fp32.pth"
    f:save(fp, { current_epoch = 1 })
    assert.are.equal(P.None, P.torch_load(fp).grad_scaler_state)
  end)
end)

-- Issue #24: "a step that never waits for the host". lunet.core.host_waits logs every blocking host wait with
-- the number of launches queued before it; a step whose batch is already on the device must queue all its
-- launches (forward, loss with its device finish, backward, unscale/clip, SGD) before the host waits, and then
-- wait only for the two values it returns. Deep supervision on (tiny3d has several outputs), mixed and fp32.
describe("a training step and the host", function()
  for _, cfg in ipairs({ { "tiny2d", "mixed", 2 }, { "tiny3d", "fp32", 1 } }) do
    it(cfg[1] .. " " .. cfg[2] .. ": every host wait comes after the step's last launch", function()
      local net = lunet.net(F .. "tiny_plans.json", cfg[1], cfg[3], 3, { seed = 2, precision = cfg[2] })
      local xs = lunet.io.npy.read(F .. cfg[1] .. "_x.npy")
      local ss = lunet.io.npy.read(F .. cfg[1] .. "_seg.npy"):astype("u8")
      local o = net:train_opts { data = xs, target = ss }
      local xd, sd = xs:to_device(), ss:to_device()
      net.core:train_step(xd, sd, o) -- plans the buffers, compiles the kernels
      lunet.core.host_waits(true)
      local loss, norm = net.core:train_step(xd, sd, o)
      local h = lunet.core.host_waits(true)
      assert.is_true(loss == loss and norm == norm)
      assert.is_true(h.launches > 30, "launches " .. h.launches)
      local what = {}
      for i, w in ipairs(h.waits) do
        what[i] = w.what
        assert.are.equal(h.launches, w.launches_before,
          ("host wait %q after %d of the step's %d launches"):format(w.what, w.launches_before, h.launches))
      end
      table.sort(what)
      assert.are.same({ "grad scaler state", "loss value" }, what)
      -- the standalone loss (validation) finishes on the device too: one wait, after its launches
      net.core:loss(xd, sd, o)
      h = lunet.core.host_waits(true)
      assert.are.equal(1, h.count)
      assert.are.equal("loss value", h.waits[1].what)
      assert.are.equal(h.launches, h.waits[1].launches_before)
    end)
  end
end)

-- Issue #24: batches staged on a second queue (csrc/cl/staging.c): the next batch's upload overlaps the running
-- step, and the step waits for it on the device. Same results as uploading in the step, no upload inside it.
describe("double-buffered batch staging", function()
  it("staged steps equal plain steps bit for bit, through both slots and the async worker", function()
    local a = lunet.net(F .. "tiny_plans.json", "tiny2d", 2, 3, { seed = 4 })
    local b = lunet.net(F .. "tiny_plans.json", "tiny2d", 2, 3, { seed = 4 })
    local s8 = seg:astype("u8")
    local o = a:train_opts { data = x, target = s8 }
    local slots = {}
    for i = 1, 4 do
      local la, na = a.core:train_step(x, s8, o)
      local slot = b.core:stage(x, s8)
      slots[i] = slot
      local lb, nb
      if i % 2 == 0 then lb, nb = lunet.core.async.train_step(b.core, x, s8, o, slot):wait()
      else lb, nb = b.core:train_step_staged(slot, o) end
      assert.are.equal(la, lb)
      assert.are.equal(na, nb)
    end
    assert.are.same({ 0, 1, 0, 1 }, slots)
    assert.are.equal(a.core:flat(0), b.core:flat(0))
    assert.are.equal(a.core:flat(2), b.core:flat(2))
  end)

  it("a staged step uploads nothing and waits only after its last launch; staging the next batch meanwhile", function()
    local net = lunet.net(F .. "tiny_plans.json", "tiny2d", 2, 3, { seed = 4, precision = "mixed" })
    local s8 = seg:astype("u8")
    local o = net:train_opts { data = x, target = s8 }
    net.core:train_step_staged(net.core:stage(x, s8), o) -- warm-up: buffers, kernels
    local slot = net.core:stage(x, s8)
    lunet.core.host_waits(true)
    local job = lunet.core.async.train_step(net.core, x, s8, o, slot)
    local nxt = net.core:stage(x, s8) -- the batch after, while the step runs: the other slot
    job:wait()
    local h = lunet.core.host_waits(true)
    assert.are_not.equal(slot, nxt)
    for _, w in ipairs(h.waits) do
      assert.is_true(w.what ~= "tensor write" and w.what ~= "tensor read", w.what)
      if w.what ~= "staging: slot reuse" then -- the stager's own wait runs beside the step, on the caller's thread
        assert.are.equal(h.launches, w.launches_before, ("%q after %d of %d launches"):format(w.what,
          w.launches_before, h.launches))
      end
    end
  end)

  it("refuses a slot that holds no batch and a staged data-parallel half step", function()
    local net = lunet.net(F .. "tiny_plans.json", "tiny2d", 2, 3, { seed = 4 })
    local o = net:train_opts { data = x, target = seg }
    local ok, err = pcall(net.core.train_step_staged, net.core, 0, o)
    assert.is_false(ok)
    assert.matches("before any stage", err)
    net.core:stage(x, seg)
    ok, err = pcall(net.core.train_step_staged, net.core, 1, o)
    assert.is_false(ok)
    assert.matches("holds no staged batch", err)
    ok, err = pcall(lunet.core.async.train_grad, net.core, x, seg, o, 0)
    assert.is_false(ok)
    assert.matches("whole steps only", err)
  end)
end)

-- Issue #25: the decoder's first conv reads the upsampled map and the skip in place on the implicit GEMM
-- (lu_conv_fwd_cat and its backward), instead of a concatenated copy whose gradient is split again.
describe("the decoder's concatenation read in place", function()
  after_each(function() lunet.core.tune.reset() end)

  for _, cfg in ipairs({ { "tiny3d", 1 }, { "tiny2d", 2 } }) do
    it(cfg[1] .. ": the same parameters bit for bit as with the copy, and fewer planned bytes", function()
      -- the implicit GEMM forced on PoCL (GPUs take it for float16 activations by themselves)
      lunet.core.tune.set("conv.igemm", 1)
      local xs = lunet.io.npy.read(F .. cfg[1] .. "_x.npy")
      local ss = lunet.io.npy.read(F .. cfg[1] .. "_seg.npy"):astype("u8")
      local function train(in_place)
        lunet.core.tune.set("train.cat_in_place", in_place and "auto" or 0)
        local net = lunet.net(F .. "tiny_plans.json", cfg[1], cfg[2], 3, { seed = 5, precision = "mixed" })
        local o = net:train_opts { data = xs, target = ss }
        local xd, sd = xs:to_device(), ss:to_device()
        local losses = {}
        for i = 1, 3 do losses[i] = net.core:train_step(xd, sd, o) end
        return net.core:flat(0), net.core:flat(2), losses, net.core:live_peak_bytes()
      end
      local p0, m0, l0, peak0 = train(false)
      local p1, m1, l1, peak1 = train(true)
      assert.are.same(l0, l1)
      assert.is_true(p0 == p1, "parameters differ")
      assert.is_true(m0 == m1, "momentum differs")
      assert.is_true(peak1 < peak0, ("live peak %d with the copy, %d in place"):format(peak0, peak1))
    end)
  end
end)
