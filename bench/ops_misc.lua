-- Bandwidth-bound network ops at nnU-Net shapes: instance norm (forward, fused with LeakyReLU,
-- backward), LeakyReLU forward/backward, channel concat, and the fused DC_and_CE loss + dlogits.
-- Prints ms per call, effective GB/s (bytes each op must move at least once per pass it makes)
-- and the ratio to the device's buffer-copy bandwidth measured in the same process. When PyTorch
-- is installed, the same ops run in PyTorch CPU with the same thread count (LUNET_BENCH_THREADS,
-- default: all cores) for a ratio (torch time / lunet time: > 1 means Lunet is faster).
--   lua5.4 bench/ops_misc.lua [--quick]
local lunet = require "lunet"
local core = lunet.core
local nn, ops = core.nn, core.ops
local now = core.now

local quick = arg[1] == "--quick"
local function numel(s) local n = 1; for _, v in ipairs(s) do n = n * v end; return n end

local function time(fn, min_s)
  fn(); core.finish() -- warm-up (kernel compile, pool)
  local reps, best = 0, math.huge
  local t_all = now()
  repeat
    local t0 = now()
    fn(); core.finish()
    best = math.min(best, now() - t0)
    reps = reps + 1
  until now() - t_all > (min_s or (quick and 0.3 or 1.0)) and reps >= 3
  return best
end

-- Device tensor of a repeated pseudo-random block (the values do not matter for timing).
local function block_dev(shape, dtype, gen)
  local n, blk = numel(shape), 4096
  assert(n % blk == 0, "bench shapes must hold a multiple of 4096 elements")
  local parts = {}
  for i = 1, blk do parts[i] = gen(i) end
  local fmt = dtype == "i32" and "<i4" or "<f"
  local one = {}
  for i = 1, blk do one[i] = string.pack(fmt, parts[i]) end
  return core.from_bytes(string.rep(table.concat(one), n // blk), shape, dtype):to_device()
end
local function rand_dev(shape, scale)
  return block_dev(shape, "f32", function(i) return (((i * 2654435761) % 1000) / 500 - 1) * (scale or 1) end)
end

local results = {}
local function report(name, shape, secs, bytes, torch_s)
  local gbs = bytes / secs / 1e9
  results[#results + 1] = {name = name, shape = table.concat(shape, "x"), ms = secs * 1e3, gbs = gbs, torch = torch_s}
end

-- device copy bandwidth (read + write), the ceiling for these ops
local big = {64 * 1024 * 1024 // 4 * 4}
local src, dst = core.zeros(big, "f32", true), core.zeros(big, "f32", true)
local tcopy = time(function() ops.copy(dst, src) end)
local copy_gbs = 2 * 4 * big[1] / tcopy / 1e9
src, dst = nil, nil
collectgarbage()

local shapes = quick and {{2, 32, 32, 32, 32}} or {{2, 32, 64, 64, 64}, {2, 64, 32, 32, 32}, {12, 32, 256, 256}}
local loss_shapes = quick and {{2, 4, 32, 32, 32}} or {{2, 4, 64, 64, 64}, {2, 14, 64, 64, 64}, {12, 4, 256, 256}}

local torch_jobs = {}
for _, shape in ipairs(shapes) do
  local N, C = shape[1], shape[2]
  local n = numel(shape)
  local x = rand_dev(shape, 3)
  local y, dy = core.zeros(shape, "f32", true), rand_dev(shape, 1)
  local w, b = core.zeros({C}, "f32", true), core.zeros({C}, "f32", true)
  ops.fill(w, 1.1); ops.fill(b, 0.1)
  local m, s = core.zeros({N * C}, "f32", true), core.zeros({N * C}, "f32", true)
  local dw, db, dx = core.zeros({C}, "f32", true), core.zeros({C}, "f32", true), core.zeros(shape, "f32", true)
  report("instnorm fwd", shape, time(function() nn.instnorm_fwd(y, m, s, x, w, b) end), 3 * 4 * n)
  report("instnorm+lrelu fwd", shape, time(function() nn.instnorm_fwd(y, m, s, x, w, b, 1e-5, 0.01) end), 3 * 4 * n)
  report("instnorm bwd", shape, time(function() nn.instnorm_bwd(x, w, m, s, dy, dx, dw, db) end), 5 * 4 * n)
  report("lrelu fwd (in place)", shape, time(function() nn.lrelu_fwd(y, y, 0.01) end), 2 * 4 * n)
  report("lrelu bwd", shape, time(function() nn.lrelu_bwd(dx, y, dy, 0.01) end), 3 * 4 * n)
  local half = {N, C // 2}
  for i = 3, #shape do half[i] = shape[i] end
  local a, bb = core.zeros(half, "f32", true), core.zeros(half, "f32", true)
  report("concat", shape, time(function() nn.concat(y, a, bb) end), 2 * 4 * n)
  torch_jobs[#torch_jobs + 1] = {kind = "norm", shape = shape}
  x, y, dy, dx, a, bb = nil, nil, nil, nil, nil, nil
  collectgarbage()
end

for _, shape in ipairs(loss_shapes) do
  local N, C = shape[1], shape[2]
  local n = numel(shape)
  local z = rand_dev(shape, 2)
  local tshape = {N, 1}
  for i = 3, #shape do tshape[i] = shape[i] end
  local t = block_dev(tshape, "i32", function(i) return (i * 7919) % C end)
  local dz = core.zeros(shape, "f32", true)
  local opts = {batch_dice = false}
  report("dc_ce loss + dlogits", shape, time(function() nn.dc_ce_loss(z, t, opts, dz) end), 6 * 4 * n)
  report("dc_ce loss only", shape, time(function() nn.dc_ce_loss(z, t, opts) end), 4 * 4 * n)
  torch_jobs[#torch_jobs + 1] = {kind = "loss", shape = shape}
  z, dz, t = nil, nil, nil
  collectgarbage()
end

-- PyTorch CPU reference (same thread count), if installed
local threads = tonumber(os.getenv("LUNET_BENCH_THREADS") or "") or tonumber(io.popen("nproc"):read("l")) or 1
local torch_times = {}
local devinfo = lunet.devices()[core.default_device() + 1]
-- PyTorch on the same kind of device: CUDA when Lunet runs on a GPU, else CPU
local torch_dev = os.getenv("LUNET_BENCH_TORCH_DEVICE") or (devinfo.type == "gpu" and "cuda" or "cpu")
do
  local py = {
    "import sys, time, torch",
    "torch.set_num_threads(" .. threads .. ")",
    "torch.set_default_device('" .. torch_dev .. "')",
    "sync = torch.cuda.synchronize if '" .. torch_dev .. "' == 'cuda' else (lambda: None)",
    "try:",
    "    from nnunetv2.training.loss.compound_losses import DC_and_CE_loss",
    "    from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss",
    "except ImportError:",  -- same computation as nnunetv2's classes (labels, no ignore, do_bg False)
    "    MemoryEfficientSoftDiceLoss = None",
    "    def DC_and_CE_loss(*a, **k):",
    "        def f(z, t):",
    "            p = torch.softmax(z, 1); ax = tuple(range(2, z.ndim))",
    "            ce = torch.nn.functional.cross_entropy(z, t[:, 0].long())",
    "            y = torch.zeros_like(p).scatter_(1, t.long(), 1)[:, 1:]; q = p[:, 1:]",
    "            dc = (2 * (q * y).sum(ax) + 1e-5) / (y.sum(ax) + q.sum(ax) + 1e-5).clamp_min(1e-8)",
    "            return ce - dc.mean()",
    "        return f",
    "def tm(f, min_s=" .. (quick and "0.3" or "1.0") .. "):",
    "    f(); sync(); best=1e9; t0=time.perf_counter(); r=0",
    "    while time.perf_counter()-t0 < min_s or r < 3:",
    "        a=time.perf_counter(); f(); sync(); best=min(best, time.perf_counter()-a); r+=1",
    "    return best",
  }
  for _, j in ipairs(torch_jobs) do
    local sh = table.concat(j.shape, ",")
    if j.kind == "norm" then
      py[#py + 1] = ("x=torch.randn(%s, requires_grad=True); C=x.shape[1]; w=torch.ones(C, requires_grad=True); b=torch.zeros(C, requires_grad=True)"):format(sh)
      py[#py + 1] = "print('instnorm fwd', tm(lambda: torch.nn.functional.instance_norm(x.detach(), weight=w.detach(), bias=b.detach(), eps=1e-5)))"
      py[#py + 1] = "print('instnorm+lrelu fwd', tm(lambda: torch.nn.functional.leaky_relu(torch.nn.functional.instance_norm(x.detach(), weight=w.detach(), bias=b.detach(), eps=1e-5), 0.01, inplace=True)))"
      py[#py + 1] = "y=torch.nn.functional.instance_norm(x, weight=w, bias=b, eps=1e-5); g=torch.randn_like(y)"
      py[#py + 1] = "print('instnorm bwd', tm(lambda: torch.autograd.grad(y, (x, w, b), g, retain_graph=True)))"
      py[#py + 1] = "yy=x.detach().clone(); print('lrelu fwd (in place)', tm(lambda: torch.nn.functional.leaky_relu_(yy, 0.01)))"
      py[#py + 1] = "print('lrelu bwd', tm(lambda: torch.ops.aten.leaky_relu_backward(g, yy, 0.01, True)))"
      py[#py + 1] = "h=x.detach()[:, :C//2].contiguous(); print('concat', tm(lambda: torch.cat([h, h], 1)))"
    else
      py[#py + 1] = ("z=torch.randn(%s, requires_grad=True); t=torch.randint(0, z.shape[1], (z.shape[0], 1) + tuple(z.shape[2:])).float()"):format(sh)
      py[#py + 1] = "L=DC_and_CE_loss and DC_and_CE_loss({'batch_dice': False, 'smooth': 1e-5, 'do_bg': False, 'ddp': False}, {}, weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)"
      py[#py + 1] = "if DC_and_CE_loss is not None: print('dc_ce loss + dlogits', tm(lambda: torch.autograd.grad(L(z, t), z)))"
      py[#py + 1] = "if DC_and_CE_loss is not None: print('dc_ce loss only', tm(lambda: L(z.detach(), t)))"
    end
    py[#py + 1] = "print('END')"
  end
  local tmp = os.tmpname()
  local f = io.open(tmp, "w"); f:write(table.concat(py, "\n"), "\n"); f:close()
  local p = io.popen("python3 " .. tmp .. " 2>/dev/null")
  local job = 1
  for line in p:lines() do
    if line == "END" then job = job + 1
    else
      local name, v = line:match("^(.-) ([%d.e%-]+)$")
      if name then torch_times[job .. "|" .. name] = tonumber(v) end
    end
  end
  p:close()
  os.remove(tmp)
end

-- attach torch figures in job order (results were recorded in the same order as torch_jobs)
do
  local job, last_shape = 0, nil
  for _, r in ipairs(results) do
    if r.shape ~= last_shape then job = job + 1; last_shape = r.shape end
    r.torch = torch_times[job .. "|" .. r.name]
  end
end

print(string.format("device: %s (%s); copy bandwidth %.1f GB/s; torch %s, threads %d", devinfo.name, devinfo.platform,
                    copy_gbs, torch_dev, threads))
print(string.format("%-22s %-18s %9s %8s %8s %10s", "op", "shape", "ms", "GB/s", "of copy", "torch/lunet"))
for _, r in ipairs(results) do
  print(string.format("%-22s %-18s %9.2f %8.1f %8.2f %10s", r.name, r.shape, r.ms, r.gbs, r.gbs / copy_gbs,
                      r.torch and string.format("%.2f", r.torch * 1e3 / r.ms) or "-"))
end
