-- ms per training step and peak memory: Lunet vs PyTorch CPU (same network from the same plan, same
-- DC+CE deep-supervision loss, clip 12, SGD Nesterov), on the same machine and thread count.
--   lua5.4 bench/train_step.lua [steps]     (LUNET_BENCH_3D=0 skips the 3-D case; 2-D: at least 25 steps)
local lunet = require "lunet"
local cjson = require "cjson"
local clock = require "lunet.util.clock"

local steps = tonumber(arg and arg[1]) or 3
local PLANS = "spec/fixtures/plans/ct_iso/nnUNetPlans.json"

local function read_json(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return cjson.decode(s)
end

local cases = {
  { cfg = "2d", patch = nil, batch = nil },
  { cfg = "3d_fullres", patch = { 64, 64, 64 }, batch = 2 },
}
if os.getenv("LUNET_BENCH_3D") == "0" then cases[2] = nil end

local plans = read_json(PLANS)
local PY = [[
import json, resource, sys, time, torch
torch.set_num_threads(2)
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
a = json.loads(sys.argv[1]); arch = a["arch"]; steps = a["steps"]
net = get_network_from_plans(arch["network_class_name"], arch["arch_kwargs"], arch["_kw_requires_import"], 1, 3,
                             allow_init=True, deep_supervision=True)
x = torch.randn(a["batch"], 1, *a["patch"]); seg = torch.randint(0, 3, (a["batch"], 1, *a["patch"])).float()
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
  local net = lunet.net(plans, c.cfg, 1, 3)
  local shape = { batch, 1 }
  local n = batch
  for _, s in ipairs(patch) do shape[#shape + 1] = s; n = n * s end
  local xs, ss = {}, {}
  for i = 1, n do xs[i] = math.random() * 2 - 1; ss[i] = math.random(0, 2) end
  local x = lunet.tensor(xs, { shape = shape }):to_device()
  local seg = lunet.tensor(ss, { shape = shape }):to_device()
  local batchspec = { data = x, target = seg, batch_dice = false }
  net:train_step(batchspec) -- plans memory, compiles kernels
  lunet.core.finish()
  -- steps of ~0.1 s (2-D) move 10-20% between runs here: time at least 2 s of them
  local steps = c.cfg == "2d" and math.max(steps, 25) or steps
  local t0 = clock.now()
  for _ = 1, steps do net:train_step(batchspec) end
  lunet.core.finish()
  local ms = (clock.now() - t0) / steps * 1000
  local peak = lunet.core.pool_stats().peak / 2 ^ 20
  local arg_json = cjson.encode { arch = conf.architecture, patch = patch, batch = batch, steps = steps }
  local p = io.popen("python3 -c '" .. PY:gsub("'", "'\\''") .. "' '" .. arg_json:gsub("'", "'\\''") .. "' 2>/dev/null")
  local out = p:read("a"); p:close()
  local ok, ref = pcall(cjson.decode, out:match("{.*}") or "")
  if not ok then ref = { ms = 0 / 0, peak_mb = 0 / 0 } end
  local row = ("%-10s patch %-10s batch %d  lunet %8.1f ms/step  peak device %7.1f MB | torch %8.1f ms/step  peak RSS %7.1f MB | speed ratio %.2f")
    :format(c.cfg, table.concat(patch, "x"), batch, ms, peak, ref.ms, ref.peak_mb, ref.ms / ms)
  print(row)
  rows[#rows + 1] = row
  net.core:free()
  x:free(); seg:free()
  collectgarbage()
end
return rows
