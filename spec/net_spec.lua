-- U-Nets from plans, training step and checkpoints, against dynamic-network-architectures
-- and nnunetv2 (fixtures from scripts/fixtures/make_net_fixtures.py).
local lunet = require "lunet"
local cjson = require "cjson"

local F = "spec/fixtures/net/"

local function read_json(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return cjson.decode(s)
end

local function floats(s)
  local t, n = {}, #s // 4
  for i = 1, n do t[i] = string.unpack("<f", s, 4 * i - 3) end
  return t
end

local function max_rel(a, b)
  assert.are.equal(#b, #a)
  local md, mx = 0, 0
  for i = 1, #a do
    md = math.max(md, math.abs(a[i] - b[i]))
    mx = math.max(mx, math.abs(b[i]))
  end
  return md / math.max(mx, 1e-30), md
end

local TINY = { tiny2d = 2, tiny3d = 1 }

local function tiny(name, opts)
  return lunet.net(F .. "tiny_plans.json", name, TINY[name], 3, opts)
end

local tmpdir = os.tmpname()
os.remove(tmpdir)
os.execute("mkdir -p " .. tmpdir)

describe("net from plans", function()
  it("has dynamic-network-architectures' parameter count, names and shapes for every plans fixture", function()
    local fx = read_json(F .. "params.json")
    local cache = {}
    assert.is_true(#fx.nets > 20)
    local seen = { plain = false, resenc = false }
    for _, e in ipairs(fx.nets) do
      cache[e.plans] = cache[e.plans] or read_json(e.plans)
      local net = lunet.net(cache[e.plans], e.configuration, e["in"], e.out, { device = false })
      seen[net.cfg.kind] = true
      local ref = fx.archs[e.arch + 1]
      local p = net:parameters()
      assert.are.equal(ref.count, p.count, e.plans .. " " .. e.configuration)
      assert.are.equal(#ref.params, p.tensors, e.plans .. " " .. e.configuration)
      for i, rp in ipairs(ref.params) do
        assert.are.equal(rp[1], p.names[i])
        assert.are.same(rp[2], p.shapes[i], rp[1])
      end
    end
    assert.is_true(seen.plain and seen.resenc)
  end)

  it("refuses an unsupported network class and a missing configuration", function()
    local plans = read_json(F .. "tiny_plans.json")
    assert.has_error(function() lunet.net(plans, "nope", 1, 2) end, "lunet.net: plans have no configuration 'nope'")
    plans.configurations.tiny2d.architecture.network_class_name = "x.ResidualEncoderUNetBottleneck"
    assert.has_error(function() lunet.net(plans, "tiny2d", 1, 2, { device = false }) end)
  end)
end)

describe("net vs PyTorch with identical weights", function()
  local res = read_json(F .. "tiny_results.json")
  for name in pairs(TINY) do
    describe(name, function()
      local x = lunet.io.npy.read(F .. name .. "_x.npy")
      local seg = lunet.io.npy.read(F .. name .. "_seg.npy")

      it("forward outputs (all deep-supervision scales) within 1e-4 relative", function()
        local net = tiny(name)
        net:load(F .. name .. "_init.pth")
        for _, train in ipairs { true, false } do
          local outs = net:forward(x, { train = train, deep_supervision = true })
          assert.are.equal(2, #outs)
          for i, o in ipairs(outs) do
            local ref = lunet.io.npy.read(F .. name .. "_out" .. (i - 1) .. ".npy")
            assert.are.same(ref.shape, o.shape)
            local r = max_rel(o:flat(), ref:flat())
            assert.is_true(r < 1e-4, ("output %d rel err %g"):format(i, r))
          end
        end
        local single = net:forward(x)
        assert.are.equal(1, #single)
      end)

      it("built without init (prediction's path) and loaded: the same PyTorch outputs", function()
        local net = tiny(name, { init = false })
        net:load(F .. name .. "_init.pth")
        local outs = net:forward(x, { deep_supervision = true })
        for i, o in ipairs(outs) do
          local ref = lunet.io.npy.read(F .. name .. "_out" .. (i - 1) .. ".npy")
          local r = max_rel(o:flat(), ref:flat())
          assert.is_true(r < 1e-4, ("output %d rel err %g"):format(i, r))
        end
      end)

      it("inference (shared buffers; batch 1: upsampling straight into the concatenation) equals training's forward",
        function()
        local net = tiny(name)
        net:load(F .. name .. "_init.pth")
        local xs = x:flat()
        local half = {}
        for i = 1, #xs // 2 do half[i] = xs[i] end
        local sh = { table.unpack(x.shape) }
        sh[1] = 1
        local x1 = lunet.tensor(half, { shape = sh, dtype = "f32" })
        for _, xb in ipairs { x1, x } do
          local tr = net:forward(xb, { train = true, deep_supervision = true })
          local inf = net:forward(xb, { deep_supervision = true })
          for i = 1, #tr do assert.are.same(tr[i]:flat(), inf[i]:flat()) end
        end
        -- an inference plan holds far less than a training plan that keeps every activation the backward
        -- reads: buffers are reused as soon as their last reader has run
        net:forward(x1)
        local planned = net.core:activation_bytes()
        lunet.core.tune.set("train.recompute", 0)
        net:forward(x1, { train = true })
        lunet.core.tune.reset()
        assert.is_true(planned < 0.4 * net.core:activation_bytes(),
          ("inference %d bytes, training %d"):format(planned, net.core:activation_bytes()))
      end)

      it("loss within 1e-5 and parameters and momentum after one and two SGD steps within 1e-5", function()
        local net = tiny(name)
        net:load(F .. name .. "_init.pth")
        local ref = tiny(name)
        assert.is_true(math.abs(net:loss { data = x, target = seg } - res[name].loss[1]) < 1e-5)
        for step = 1, 2 do
          local l, gn = net:train_step { data = x, target = seg, lr = res[name].lr }
          assert.is_true(math.abs(l - res[name].loss[step]) < 1e-5, ("loss %.8f vs %.8f"):format(l, res[name].loss[step]))
          assert.is_true(math.abs(gn - res[name].grad_norm[step]) < 1e-4 * res[name].grad_norm[step])
          ref:load(F .. name .. "_step" .. step .. ".pth")
          local _, md = max_rel(floats(net.core:flat(0)), floats(ref.core:flat(0)))
          assert.is_true(md < 1e-5, ("step %d parameters: max abs diff %g"):format(step, md))
          -- momentum = (accumulated) gradients: float32 reduction order differs, compare relative to its scale
          local r = max_rel(floats(net.core:flat(2)), floats(ref.core:flat(2)))
          assert.is_true(r < 1e-4, ("step %d momentum: rel diff %g"):format(step, r))
        end
      end)
    end)
  end
end)

describe("checkpoints", function()
  it("Lunet's former format (LUNETCKP) still loads, weights and momentum", function()
    local a = tiny("tiny3d", { seed = 3 })
    a:train_step { data = lunet.io.npy.read(F .. "tiny3d_x.npy"), target = lunet.io.npy.read(F .. "tiny3d_seg.npy") }
    local path = tmpdir .. "/old_format.pth"
    -- the C writer of version 1 is kept for exactly this check
    a.core:save(path, require("cjson").encode { format = "lunet-checkpoint", configuration = "tiny3d",
      meta = { current_epoch = 4 } })
    local f = io.open(path, "rb")
    assert.are.equal("LUNETCKP", f:read(8))
    f:close()
    local b = tiny("tiny3d", { seed = 99 })
    local meta = b:load(path)
    assert.are.equal(4, meta.current_epoch)
    assert.are.equal(a.core:flat(0), b.core:flat(0))
    assert.are.equal(a.core:flat(2), b.core:flat(2))
  end)

  local x = lunet.io.npy.read(F .. "tiny3d_x.npy")
  local seg = lunet.io.npy.read(F .. "tiny3d_seg.npy")

  it("save, load and continue is bit-identical to an uninterrupted run", function()
    local a = tiny("tiny3d", { seed = 3 })
    for _ = 1, 2 do a:train_step { data = x, target = seg } end
    local path = tmpdir .. "/checkpoint_latest.pth"
    a:save(path, { epoch = 2, lr = 0.01, rng = { 1, 2, 3 } })
    for _ = 1, 3 do a:train_step { data = x, target = seg } end
    local b = tiny("tiny3d", { seed = 99 })
    local meta, header = b:load(path)
    assert.are.equal(2, meta.epoch)
    assert.are.same({ 1, 2, 3 }, meta.rng)
    assert.are.equal("tiny3d", header.configuration)
    assert.are.equal("tiny", header.plans.plans_name)
    for _ = 1, 3 do b:train_step { data = x, target = seg } end
    assert.are.equal(a.core:flat(0), b.core:flat(0))
    assert.are.equal(a.core:flat(2), b.core:flat(2))
  end)

  it("uint8 targets (the trainer's upload) train bit-identically to int32, also when batches switch dtype", function()
    local a, b = tiny("tiny3d", { seed = 3 }), tiny("tiny3d", { seed = 3 })
    local s32, s8 = seg:astype("i32"), seg:astype("u8")
    for i = 1, 3 do
      local la = a:train_step { data = x, target = s32 }
      -- b switches: u8, i32, u8 (the deep-supervision target buffers follow the dtype)
      local lb = b:train_step { data = x, target = (i == 2) and s32 or s8 }
      assert.are.equal(la, lb)
    end
    assert.are.equal(a.core:flat(0), b.core:flat(0))
    assert.are.equal(a.core:flat(2), b.core:flat(2))
  end)

  it("prediction never makes the gradient and momentum buffers; training makes them on first use", function()
    local a = tiny("tiny3d", { seed = 3 })
    local pbytes = a.core:flat_floats() * 4
    assert.are.equal(pbytes, a.core:flat_bytes()) -- parameters only
    a:forward(x)
    assert.are.equal(pbytes, a.core:flat_bytes())
    -- a save before any training writes zero momentum, as the zero-filled buffer did, and makes nothing
    local path0 = tmpdir .. "/untrained.pth"
    a:save(path0, { epoch = 0 })
    assert.are.equal(pbytes, a.core:flat_bytes())
    assert.are.equal(string.rep("\0", pbytes), a.core:flat(2))
    -- a trained checkpoint loaded for prediction (momentum = false) leaves the buffer unmade
    local t = tiny("tiny3d", { seed = 3 })
    t:train_step { data = x, target = seg }
    assert.are.equal(3 * pbytes, t.core:flat_bytes())
    local path1 = tmpdir .. "/trained.pth"
    t:save(path1, { epoch = 1 })
    local p = tiny("tiny3d", { init = false })
    p:load(path1, { momentum = false })
    assert.are.equal(pbytes, p.core:flat_bytes())
    assert.are.equal(t.core:flat(0), p.core:flat(0))
    p:forward(x)
    assert.are.equal(pbytes, p.core:flat_bytes())
    -- training after inference (buffers made lazily then) is bit-identical to training from the start
    local l1 = a:train_step { data = x, target = seg }
    assert.are.equal(3 * pbytes, a.core:flat_bytes())
    local l2 = a:train_step { data = x, target = seg }
    local b = tiny("tiny3d", { seed = 3 })
    assert.are.equal(l1, b:train_step { data = x, target = seg })
    assert.are.equal(l2, b:train_step { data = x, target = seg })
    assert.are.equal(b.core:flat(0), a.core:flat(0))
    assert.are.equal(b.core:flat(2), a.core:flat(2))
    -- loading with momentum (resume) makes the buffer and restores it
    local r = tiny("tiny3d", { init = false })
    r:load(path1)
    assert.are.equal(2 * pbytes, r.core:flat_bytes())
    assert.are.equal(t.core:flat(2), r.core:flat(2))
  end)

  it("refuses a checkpoint of another plan with a clear message", function()
    local n = tiny("tiny2d")
    local ok, err = pcall(n.load, n, F .. "tiny3d_init.pth")
    assert.is_false(ok)
    assert.matches("tiny3d_init.pth: checkpoint is for a different network", err, 1, true)
    ok, err = pcall(n.load, n, "spec/fixtures/net/tiny_plans.json")
    assert.is_false(ok)
    assert.matches("not a Lunet checkpoint", err)
  end)
end)

describe("training", function()
  it("a tiny network overfits a tiny batch (loss < 10% of its start)", function()
    local net = tiny("tiny2d", { seed = 7 })
    local x = lunet.io.npy.read(F .. "tiny2d_x.npy")
    local seg = lunet.io.npy.read(F .. "tiny2d_seg.npy")
    local first, last
    for i = 1, 200 do
      last = net:train_step { data = x, target = seg }
      first = first or last
      if last < 0.1 * first then break end
    end
    assert.is_true(last < 0.1 * first, ("loss %g from %g"):format(last, first))
  end)

  it("frozen weights: inference reuses each conv's packed weights until a write to the weights", function()
    -- net a freezes its weights, net b never does; both take the same writes and must agree throughout
    local a, b = tiny("tiny2d", { seed = 3 }), tiny("tiny2d", { seed = 3 })
    local x = lunet.io.npy.read(F .. "tiny2d_x.npy")
    local seg = lunet.io.npy.read(F .. "tiny2d_seg.npy")
    local function agree()
      local ya = a:forward(x)[1]:flat()
      assert.are.same(b:forward(x)[1]:flat(), ya)
      assert.are.same(ya, a:forward(x)[1]:flat()) -- the second frozen forward reuses the packs
      return ya
    end
    a:freeze_weights()
    assert.is_true(a:weights_frozen())
    local ref = agree()
    -- every weight written: each conv's packed copy is stale (a kept one would give a's old output)
    for _, name in ipairs(a:parameters().names) do
      local w = a:get(name)
      local v = w:flat()
      for i = 1, #v do v[i] = -2 * v[i] end
      a:set(name, lunet.tensor(v, { shape = w.shape }))
      b:set(name, lunet.tensor(v, { shape = w.shape }))
    end
    assert.is_false(a:weights_frozen())
    a:freeze_weights()
    local changed = agree()
    assert.are_not.same(ref, changed)
    -- a training step, init and a checkpoint load write them too
    a:train_step { data = x, target = seg }
    b:train_step { data = x, target = seg }
    assert.is_false(a:weights_frozen())
    a:freeze_weights()
    local trained = agree()
    assert.are_not.same(changed, trained)
    local path = tmpdir .. "/frozen.pth"
    a:save(path, {})
    a:init(5)
    b:init(5)
    assert.is_false(a:weights_frozen())
    a:freeze_weights()
    agree()
    a:load(path)
    b:load(path)
    assert.is_false(a:weights_frozen())
    a:freeze_weights()
    assert.are.same(trained, agree())
    a:freeze_weights(false)
    assert.is_false(a:weights_frozen())
  end)

  it("plans activations once per shape; inference keeps far less than training", function()
    local net = tiny("tiny3d")
    local x = lunet.io.npy.read(F .. "tiny3d_x.npy")
    local seg = lunet.io.npy.read(F .. "tiny3d_seg.npy")
    net:train_step { data = x, target = seg }
    local train_bytes = net.core:activation_bytes()
    -- the pool hands a request any free buffer up to twice its size, so which call's scratch finds a home
    -- settles over the first two steps; from then on a step allocates nothing
    net:train_step { data = x, target = seg }
    local s0 = lunet.core.pool_stats()
    for _ = 1, 3 do net:train_step { data = x, target = seg } end
    local s1 = lunet.core.pool_stats()
    assert.are.equal(s0.allocs, s1.allocs)
    assert.are.equal(train_bytes, net.core:activation_bytes())
    net:forward(x)
    assert.is_true(net.core:activation_bytes() < 0.5 * train_bytes)
  end)

  -- Training plans (nn/unet_fwd.c) place activations and gradients by their lifetime in the recorded passes, and
  -- by default recompute the norm outputs in the backward from the kept conv outputs (tunable train.recompute).
  -- tiny2d: batch 2, features 4, 8, 16 at 16^2, 8^2, 4^2, two convs per stage: a map of stage s holds
  -- u[s] = 2 * f[s] * side[s]^2 floats. The peak is the finest decoder head's backward: everything the backward
  -- reads plus that stage's output gradient (u[1]), plus with recomputation the output itself recomputed.
  it("training plans hold what the backward reads at its peak; recomputing norm outputs drops them, same bits",
    function()
    local x = lunet.io.npy.read(F .. "tiny2d_x.npy")
    local seg = lunet.io.npy.read(F .. "tiny2d_seg.npy")
    local u = { 4 * 2 * 4 * 16 * 16, 4 * 2 * 8 * 8 * 8, 4 * 2 * 16 * 4 * 4 }
    -- kept: per conv its output and its norm output (4 maps per stage), per decoder stage the concatenation
    -- (2 maps) and the 4 maps of its convs
    local keep = 4 * (u[1] + u[2] + u[3]) + 6 * (u[1] + u[2]) + u[1]
    -- recomputed: the conv outputs only, the concatenations, and the head's input recomputed
    local rc = 2 * (u[1] + u[2] + u[3]) + 4 * (u[1] + u[2]) + 2 * u[1]
    assert.are.equal(139264, keep) -- the former plan (all activations kept, gradients apart): 191488 bytes
    local got = {}
    for _, mode in ipairs { 0, 1 } do
      lunet.core.tune.set("train.recompute", mode)
      local net = tiny("tiny2d")
      net:load(F .. "tiny2d_init.pth")
      for _ = 1, 2 do net:train_step { data = x, target = seg } end
      got[mode] = { peak = net.core:live_peak_bytes(), bytes = net.core:activation_bytes(), p = net.core:flat(0),
        m = net.core:flat(2) }
    end
    lunet.core.tune.reset()
    assert.are.equal(keep, got[0].peak)
    assert.are.equal(rc, got[1].peak)
    -- the arena is the live peak in both plans (nothing else differs between them)
    assert.are.equal(keep - rc, got[0].bytes - got[1].bytes)
    -- the recomputation is the forward's kernel on the same input: parameters and momentum bit-identical
    assert.is_true(got[0].p == got[1].p, "parameters differ")
    assert.is_true(got[0].m == got[1].m, "momentum differs")
  end)

  it("a residual-encoder U-Net trains bit-identically with norm outputs kept or recomputed", function()
    local plans = "spec/fixtures/plans/brain_mr_100/nnUNetResEncUNetMPlans.json"
    local sh = { 2, 1, 64, 64 }
    local xs, ss = {}, {}
    for i = 1, 2 * 64 * 64 do
      xs[i] = ((i * 2654435761) % 1000) / 500 - 1
      ss[i] = (i * 40503) % 3
    end
    local x, seg = lunet.tensor(xs, { shape = sh }), lunet.tensor(ss, { shape = sh })
    local got = {}
    for _, mode in ipairs { 0, 1 } do
      lunet.core.tune.set("train.recompute", mode)
      local net = lunet.net(plans, "2d", 1, 3)
      assert.are.equal("resenc", net.cfg.kind)
      net.core:init(3)
      for _ = 1, 2 do net:train_step { data = x, target = seg } end
      got[mode] = { peak = net.core:live_peak_bytes(), p = net.core:flat(0), m = net.core:flat(2) }
    end
    lunet.core.tune.reset()
    assert.is_true(got[1].peak < 0.9 * got[0].peak, ("%d vs %d bytes"):format(got[1].peak, got[0].peak))
    assert.is_true(got[0].p == got[1].p, "parameters differ")
    assert.is_true(got[0].m == got[1].m, "momentum differs")
  end)

  it("deep-supervision weights and poly LR follow the rules", function()
    local tr = require("lunet.rules.default").trainer
    local w = lunet.net.ds_weights(3, tr)
    assert.is_true(math.abs(w[1] - 2 / 3) < 1e-12 and math.abs(w[2] - 1 / 3) < 1e-12 and w[3] == 0)
    assert.is_true(math.abs(lunet.net.poly_lr(tr, 999) - 0.01 * (1 / 1000) ^ 0.9) < 1e-15)
  end)
end)
