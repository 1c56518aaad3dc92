-- ms per training step and peak memory: Lunet vs PyTorch CPU (same network from the same plan, same
-- DC+CE deep-supervision loss, clip 12, SGD Nesterov), on the same machine and thread count.
--   lua5.4 bench/train_step.lua [steps]     (LUNET_BENCH_3D=0 skips the 3-D case; 2-D: at least 25 steps)
local lunet = require "lunet"
local cjson = require "cjson"
local clock = require "lunet.util.clock"
io.stdout:setvbuf("line") -- a bench cut off by the device script's timeout still shows what it printed

--   lua5.4 bench/train_step.lua amp [steps] [tiny] [2d]
--     nnU-Net's default 3d_fullres (PlainConvUNet, 6 stages 32..320, patch 128^3, batch 2): Lunet with
--     precision "mixed" and "fp32", and PyTorch with AMP (autocast fp16 + GradScaler) and fp32 on CUDA when it is
--     there (CPU otherwise), on the same machine: ms per step and peak device memory (Lunet: its buffer pool's
--     peak; torch: max_memory_allocated, or peak RSS on CPU). Each run is its own process, so peaks are its
--     own. `tiny`: features 4..16, patch 64^3 (the bottleneck keeps 2^3 voxels, as torch's instance norm needs), for checking the bench itself on PoCL.
local PLANS = "spec/fixtures/plans/ct_iso/nnUNetPlans.json"

local function read_json(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return cjson.decode(s)
end

local function shq(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- The words of arg from index i on, as a set (the amp modes' `tiny` and `2d`).
local function flags_from(i)
  local flags = {}
  for j = i, #arg do flags[arg[j]] = true end
  return flags
end

-- The default 3d_fullres network for a 128^3 patch (what nnU-Net plans for an isotropic dataset with a large
-- median shape), written into the fixture plans' 3d_fullres configuration.
-- `2d`: nnU-Net's real 2d plan of the abdominal-CT fixture (8 stages 32..512, 512x512, batch 12), untouched
-- (tiny: 64x64, features 4..16). Returns plans, the configuration, its name.
local CT2D = "spec/fixtures/plans/abdomen_ct_lowres/nnUNetPlans.json"
local function amp_plans(tiny, two_d)
  if two_d then
    local plans = read_json(CT2D)
    local conf = plans.configurations["2d"]
    if tiny then
      conf.architecture.arch_kwargs.features_per_stage = { 4, 8, 16, 16, 16, 16, 16, 16 }
      conf.patch_size, conf.batch_size = { 256, 256 }, 2
    end
    return plans, conf, "2d"
  end
  local plans = read_json(PLANS)
  local conf = plans.configurations["3d_fullres"]
  local feats = tiny and { 4, 8, 16, 16, 16, 16 } or { 32, 64, 128, 256, 320, 320 }
  local k, st = {}, {}
  for i = 1, 6 do k[i] = { 3, 3, 3 }; st[i] = i == 1 and { 1, 1, 1 } or { 2, 2, 2 } end
  local kw = conf.architecture.arch_kwargs
  kw.n_stages, kw.features_per_stage, kw.kernel_sizes, kw.strides = 6, feats, k, st
  kw.n_conv_per_stage, kw.n_conv_per_stage_decoder = { 2, 2, 2, 2, 2, 2 }, { 2, 2, 2, 2, 2 }
  conf.patch_size = tiny and { 64, 64, 64 } or { 128, 128, 128 }
  conf.batch_size = 2
  return plans, conf, "3d_fullres"
end

local AMP_PY = [[
import json, resource, sys, time, torch
a = json.loads(sys.argv[1]); arch = a["arch"]; steps = a["steps"]; amp = a["precision"] == "mixed"
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1, 3,
                             allow_init=True, deep_supervision=True).to(dev)
x = torch.randn(a["batch"], 1, *a["patch"], device=dev)
seg = torch.randint(0, 3, (a["batch"], 1, *a["patch"]), device=dev).float()
w = [1 / 2 ** i for i in range(arch["arch_kwargs"]["n_stages"] - 1)]; w[-1] = 0; w = [v / sum(w) for v in w]
loss = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss), w)
opt = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
scaler = torch.amp.GradScaler(dev.type) if amp and dev.type == "cuda" else None
t = [torch.nn.functional.interpolate(seg, scale_factor=0.5 ** i, mode="nearest-exact") if i else seg
     for i in range(arch["arch_kwargs"]["n_stages"] - 1)]
def step():  # nnUNetTrainer.train_step
    opt.zero_grad(set_to_none=True)
    with torch.autocast(dev.type, enabled=scaler is not None):
        l = loss(net(x), t)
    if scaler is not None:
        scaler.scale(l).backward(); scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12); scaler.step(opt); scaler.update()
    else:
        l.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 12); opt.step()
    return l
step()
if dev.type == "cuda": torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
t0 = time.perf_counter()
for _ in range(steps): step()
if dev.type == "cuda": torch.cuda.synchronize()
peak = torch.cuda.max_memory_allocated() / 2 ** 20 if dev.type == "cuda" else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"ms": (time.perf_counter() - t0) / steps * 1000, "peak_mb": peak, "device": str(dev)}))
]]

-- One Lunet run (its own process): prints {ms, peak_mb, precision, loss}.
local function amp_one(precision, steps, tiny, two_d)
  local plans, conf, cfg = amp_plans(tiny, two_d)
  local net = lunet.net(plans, cfg, 1, 3, { precision = precision })
  local shape, n = { conf.batch_size, 1 }, conf.batch_size
  for _, s in ipairs(conf.patch_size) do shape[#shape + 1] = s; n = n * s end
  local xs, ss = {}, {}
  for i = 1, n do xs[i] = math.random() * 2 - 1; ss[i] = math.random(0, 2) end
  local x = lunet.tensor(xs, { shape = shape }):to_device()
  local seg = lunet.tensor(ss, { shape = shape, dtype = "u8" }):to_device() -- as the trainer uploads labels
  local b = { data = x, target = seg, batch_dice = false }
  net:train_step(b) -- plans memory, compiles kernels
  lunet.core.finish()
  local t0 = clock.now()
  local l
  for _ = 1, steps do l = net:train_step(b) end
  lunet.core.finish()
  local ms = (clock.now() - t0) / steps * 1000
  -- one more step under the host-wait log: waits before the step's last launch are synchronisations inside it
  local o = net:train_opts(b)
  lunet.core.host_waits(true)
  net.core:train_step(x, seg, o)
  local h = lunet.core.host_waits(true)
  local inside = 0
  for _, w in ipairs(h.waits) do if w.launches_before < h.launches then inside = inside + 1 end end
  print(cjson.encode { ms = ms, peak_mb = lunet.core.pool_stats().peak / 2 ^ 20, precision = net.precision,
                       loss = l, scale = net.core:scaler().scale, launches = h.launches, waits = h.count,
                       waits_inside = inside })
end

if arg and arg[1] == "amp-one" then
  local flags = flags_from(4)
  amp_one(arg[2], tonumber(arg[3]), flags.tiny, flags["2d"])
  return
end

-- lua5.4 bench/train_step.lua tune-igemm [budget_s] [tiny]: lunet tune --igemm on the amp plan (every GEMM shape
-- of its mixed-precision step timed on each implicit-GEMM tile, the fastest saved in the device's tunables file,
-- which later runs apply), largest GEMMs first within the budget (default 120 s).
if arg and arg[1] == "tune-igemm" then
  local tuner = require "lunet.tuner"
  local plans = amp_plans(flags_from(3).tiny)
  local step = tuner.network_step(plans, "3d_fullres", { channels = 1, classes = 3 })
  local t0 = clock.now()
  local r = tuner.tune_igemm({ step = step, budget_s = tonumber(arg[2]) or 120, log = print })
  local gain, n = 0, 0
  for _, e in ipairs(r.results) do
    if e.best and e.times[e.rule] then gain, n = gain + (e.times[e.rule] - e.times[e.best]), n + 1 end
  end
  print(("tuned %d GEMM shapes in %.0f s (%d past the budget); summed over one run each, the tuned tiles save " ..
    "%.2f ms against the rule's; saved to %s"):format(#r.results, clock.now() - t0, r.skipped, gain * 1e3, r.path))
  return
end

if arg and arg[1] == "amp" then
  local steps = tonumber(arg[2]) or 5
  local flags = flags_from(3)
  local tiny, two_d = flags.tiny, flags["2d"]
  local _, conf, cfg = amp_plans(tiny, two_d)
  local rows = {}
  local function run(cmd)
    local p = io.popen(cmd .. " 2>/dev/null")
    local out = p:read("a"); p:close()
    local ok, r = pcall(cjson.decode, out:match("{.*}") or "")
    return ok and r or { ms = 0 / 0, peak_mb = 0 / 0 }
  end
  local dev = lunet.devices()[1]
  print(("%s %s, patch %s, batch %d, %d steps; Lunet on the default device (first: %s)"):format(cfg,
    tiny and "tiny (features 4..16)" or (two_d and "8 stages 32..512 (nnU-Net's abdominal-CT 2d plan)" or
    "6 stages 32..320"), table.concat(conf.patch_size, "x"), conf.batch_size, steps, dev and dev.name or "?"))
  local base = {}
  for _, prec in ipairs { "fp32", "mixed" } do
    local r = run("lua5.4 bench/train_step.lua amp-one " .. prec .. " " .. steps .. (tiny and " tiny" or "") ..
      (two_d and " 2d" or ""))
    local arg_json = cjson.encode { arch = conf.architecture, patch = conf.patch_size, batch = conf.batch_size,
                                    steps = steps, precision = prec }
    local t = run("python3 -c " .. shq(AMP_PY) .. " " .. shq(arg_json))
    base[prec] = r
    local row = ("%-5s lunet %9.1f ms/step peak %8.1f MB (%s, loss %.4f, scale %s, %.0f launches, host waits inside " ..
      "the step %.0f of %.0f) | torch %s %9.1f ms/step peak %8.1f MB | torch/lunet %.2f"):format(prec, r.ms, r.peak_mb,
      tostring(r.precision), tonumber(r.loss) or 0 / 0, tostring(r.scale), r.launches or 0 / 0,
      r.waits_inside or 0 / 0, r.waits or 0 / 0, tostring(t.device or "-"), t.ms, t.peak_mb, t.ms / r.ms)
    print(row)
    rows[#rows + 1] = row
  end
  print(("lunet mixed/fp32: time %.3f, peak memory %.3f"):format(base.mixed.ms / base.fp32.ms,
    base.mixed.peak_mb / base.fp32.peak_mb))
  return rows
end

-- lua5.4 bench/train_step.lua --plan ct2d|ct3d|mri3d [steps]
-- --plan takes a real nnU-Net default plan (nnunetv2's planner output, spec/fixtures/plans, see bench/predict.lua)
-- at its planned patch and batch size: ct2d 512x512 batch 12 (8 stages 32..512), ct3d 56x192x224 batch 2 and mri3d
-- 128^3 batch 2 with 4 channels (6 stages 32..320). Steps default to 1 after the warm-up step there.
local REAL = {
  ct2d = { dir = "spec/fixtures/plans/abdomen_ct_lowres", cfg = "2d" },
  ct3d = { dir = "spec/fixtures/plans/abdomen_ct_lowres", cfg = "3d_fullres" },
  mri3d = { dir = "spec/fixtures/plans/brain_mr_100", cfg = "3d_fullres" },
}
local steps, real
do
  local i = 1
  while arg and i <= #arg do
    if arg[i] == "--plan" then
      real = assert(REAL[arg[i + 1]], "--plan: one of ct2d, ct3d, mri3d")
      real.name = arg[i + 1]
      i = i + 1
    else
      steps = tonumber(arg[i])
    end
    i = i + 1
  end
end
steps = steps or (real and 1 or 3)
if real then PLANS = real.dir .. "/nnUNetPlans.json" end

local cases = {
  { cfg = "2d", patch = nil, batch = nil },
  { cfg = "3d_fullres", patch = { 64, 64, 64 }, batch = 2 },
}
if os.getenv("LUNET_BENCH_3D") == "0" then cases[2] = nil end
local nch, ncls = 1, 3
if real then
  cases = { { cfg = real.cfg } }
  local dj = read_json(real.dir .. "/dataset.json")
  nch, ncls = 0, 0
  for _ in pairs(dj.channel_names) do nch = nch + 1 end
  for _ in pairs(dj.labels) do ncls = ncls + 1 end
end

local plans = read_json(PLANS)
local PY = [[
import json, resource, sys, time, torch
torch.set_num_threads(2)
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
a = json.loads(sys.argv[1]); arch = a["arch"]; steps = a["steps"]
net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], a["nch"],
                             a["ncls"], allow_init=True, deep_supervision=True)
x = torch.randn(a["batch"], a["nch"], *a["patch"])
seg = torch.randint(0, a["ncls"], (a["batch"], 1, *a["patch"])).float()
w = [1 / 2 ** i for i in range(arch["arch_kwargs"]["n_stages"] - 1)]; w[-1] = 0; w = [v / sum(w) for v in w]
loss = DeepSupervisionWrapper(DC_and_CE_loss({"batch_dice": False, "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss), w)
opt = torch.optim.SGD(net.parameters(), 1e-2, weight_decay=3e-5, momentum=0.99, nesterov=True)
def step():
    opt.zero_grad(set_to_none=True); outs = net(x)
    t = [torch.nn.functional.interpolate(seg, size=o.shape[2:], mode="nearest-exact") for o in outs]
    l = loss(outs, t); l.backward(); torch.nn.utils.clip_grad_norm_(net.parameters(), 12); opt.step()
step()
t0 = time.perf_counter()
for _ in range(steps): step()
print(json.dumps({"ms": (time.perf_counter() - t0) / steps * 1000,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
]]

local rows = {}
for _, c in ipairs(cases) do
  local conf = lunet.net.configuration(plans, c.cfg)
  local patch = {}
  for i, s in ipairs(c.patch or conf.patch_size) do patch[i] = math.tointeger(s) end
  local batch = math.tointeger(c.batch or conf.batch_size)
  local net = lunet.net(plans, c.cfg, nch, ncls)
  local shape, sshape = { batch, nch }, { batch, 1 }
  local n = batch
  for _, s in ipairs(patch) do shape[#shape + 1] = s; sshape[#sshape + 1] = s; n = n * s end
  local xs, ss = {}, {}
  for i = 1, n * nch do xs[i] = math.random() * 2 - 1 end
  for i = 1, n do ss[i] = math.random(0, ncls - 1) end
  local x = lunet.tensor(xs, { shape = shape }):to_device()
  local seg = lunet.tensor(ss, { shape = sshape }):to_device()
  xs, ss = nil, nil
  collectgarbage()
  local batchspec = { data = x, target = seg, batch_dice = false }
  net:train_step(batchspec) -- plans memory, compiles kernels
  lunet.core.finish()
  -- steps of ~0.1 s (2-D) move 10-20% between runs here: time at least 2 s of them
  local steps = (c.cfg == "2d" and not real) and math.max(steps, 25) or steps
  local t0 = clock.now()
  for _ = 1, steps do net:train_step(batchspec) end
  lunet.core.finish()
  local ms = (clock.now() - t0) / steps * 1000
  local peak = lunet.core.pool_stats().peak / 2 ^ 20
  local arg_json = cjson.encode { arch = conf.architecture, patch = patch, batch = batch, steps = steps,
    nch = nch, ncls = ncls }
  local p = io.popen("python3 -c '" .. PY:gsub("'", "'\\''") .. "' '" .. arg_json:gsub("'", "'\\''") .. "' 2>/dev/null")
  local out = p:read("a"); p:close()
  local ok, ref = pcall(cjson.decode, out:match("{.*}") or "")
  if not ok then ref = { ms = 0 / 0, peak_mb = 0 / 0 } end
  -- the process's own peak RSS too: on PoCL the device pool lives in host memory, next to Lua's and the kernels'
  local st = io.open("/proc/self/status")
  local hwm = st and tonumber(st:read("a"):match("VmHWM:%s*(%d+)")) or 0
  if st then st:close() end
  local up = io.popen("uptime"); local load = up:read("a"):match("load average: ([%d%.]+)") or "?"; up:close()
  local row = ("%-10s %spatch %-10s batch %d  lunet %8.1f ms/step  peak device %7.1f MB  peak RSS %7.1f MB | torch %8.1f ms/step  peak RSS %7.1f MB | speed ratio %.2f, load %s")
    :format(c.cfg, real and (real.name .. " ") or "", table.concat(patch, "x"), batch, ms, peak, hwm / 1024, ref.ms,
      ref.peak_mb, ref.ms / ms, load)
  print(row)
  rows[#rows + 1] = row
  net.core:free()
  x:free(); seg:free()
  collectgarbage()
end
return rows
