-- Data-parallel training's cost over Open MPI (lunet.dist; docs/distributed.md):
--   1. MPI_Allreduce (mean) of host float buffers of the real gradient sizes: PlainConvUNet and ResEnc M and L
--      3d_fullres (brain_mr_100 plans fixture, 4 channels), and the device path of a training step
--      (gradient buffer read from the device, allreduce, written back) for the PlainConvUNet;
--   2. training throughput of the ct_iso 2d and 3d_fullres networks, global batch from the plan (5 and 2): one
--      process (the fused step) against 2 ranks (3 + 2 and 1 + 1 samples, the split step, averaged gradient).
--   lua5.4 bench/allreduce.lua [reps=5] [steps=6]     (runs itself under mpirun -np 2; skips without mpirun)
--   3. lua5.4 bench/allreduce.lua --scaling [steps=6]: the issue's scaling measurement, one thread per rank:
--      PoCL limited to one thread per process (POCL_MAX_PTHREAD_COUNT=1; Lunet's host threads are not used by
--      the step), 1 process against 2 ranks bound to one core each (mpirun --bind-to core), the same global
--      batch, with the gradient buckets overlapping the backward (LUNET_BUCKET_MB=25 and 2) and without (=0). Each
--      run reports its CPU seconds per wall second (/proc/self/stat), which checks the thread limit holds.
local lunet = require "lunet"
local core = lunet.core
local clock = require "lunet.util.clock"
local dist = require "lunet.dist"

local mode = arg[1]
local PLANS_BIG = "spec/fixtures/plans/brain_mr_100/"
local PLANS_STEP = "spec/fixtures/plans/ct_iso/nnUNetPlans.json"
local NP = 2

local function median(t)
  table.sort(t)
  local n = #t
  return n % 2 == 1 and t[(n + 1) // 2] or (t[n // 2] + t[n // 2 + 1]) / 2
end

local function sh(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return s
end

-- ------------------------------------------------------------------------------------------------ in the ranks
if mode == "--allreduce" then
  local reps = tonumber(arg[2]) or 5
  local sizes = {
    { "PlainConvUNet 3d_fullres", lunet.net(PLANS_BIG .. "nnUNetPlans.json", "3d_fullres", 4, 3, { device = false }) },
    { "ResEnc M 3d_fullres", lunet.net(PLANS_BIG .. "nnUNetResEncUNetMPlans.json", "3d_fullres", 4, 3, { device = false }) },
    { "ResEnc L 3d_fullres", lunet.net(PLANS_BIG .. "nnUNetResEncUNetLPlans.json", "3d_fullres", 4, 3, { device = false }) },
  }
  for _, s in ipairs(sizes) do
    local n = s[2]:parameters().count
    local t = core.zeros({ n }, "f32")
    core.dist.allreduce_mean(t) -- warm-up: connections, registration
    local ts = {}
    for i = 1, reps do dist.barrier(); ts[i] = core.dist.allreduce_mean(t) end
    local m = median(ts)
    if dist.is_main() then
      -- bus bandwidth as NCCL's tests define it for allreduce: 2 (n-1)/n * bytes / time
      print(("allreduce %-26s %11d floats %8.1f MB  median %8.1f ms  bus %6.2f GB/s  (%d ranks, %d reps)"):format(s[1], n,
        n * 4 / 1e6, m * 1e3, 2 * (NP - 1) / NP * n * 4 / m / 1e9, dist.size(), reps))
    end
    t = nil
    collectgarbage()
  end
  -- the device path of one step: gradient buffer device -> host, allreduce, host -> device
  local net = lunet.net(PLANS_BIG .. "nnUNetPlans.json", "3d_fullres", 4, 3, { device = dist.device(nil) })
  dist.allreduce_grads(net)
  local tot, ar = {}, {}
  for i = 1, reps do
    dist.barrier()
    local t0 = clock.now()
    ar[i] = dist.allreduce_grads(net)
    tot[i] = clock.now() - t0
  end
  if dist.is_main() then
    print(("allreduce_grads PlainConvUNet 3d_fullres (device -> host -> allreduce -> device): median %8.1f ms, " ..
      "of which MPI %8.1f ms"):format(median(tot) * 1e3, median(ar) * 1e3))
  end
  return
end

if mode == "--steps" then
  local steps, cfg = tonumber(arg[2]) or 6, arg[3] or "2d"
  local conf = lunet.net.configuration(require("lunet.util.json").read(PLANS_STEP), cfg)
  local global = conf.batch_size
  local B = dist.split_batch(global, 0.33)
  local shape, vox = { B, 1 }, 1
  for i, v in ipairs(conf.patch_size) do shape[i + 2] = v; vox = vox * v end
  local rng = core.rng.new(1 + dist.rank(), 0)
  local xs, ss = {}, {}
  for i = 1, B * vox do xs[i] = rng:float(); ss[i] = rng:int(0, 2) end
  local x = lunet.tensor(xs, { shape = shape }):to_device()
  local seg = lunet.tensor(ss, { shape = shape }):to_device()
  local net = lunet.net(PLANS_STEP, cfg, 1, 3, { device = dist.device(nil) })
  local nb = dist.setup_buckets(net) -- LUNET_BUCKET_MB (default 25; 0: one allreduce after the backward)
  local batch = { data = x, target = seg, lr = 0.01 }
  local function step()
    if dist.size() > 1 then
      local o = net:train_opts(batch)
      o.dist_batch_dice = true
      net.core:train_grad(x, seg, o)
      local a = dist.allreduce_grads(net)
      net.core:train_update(o)
      return a
    end
    net:train_step(batch)
    return 0
  end
  -- this process's CPU seconds (all its threads: PoCL's included), from /proc/self/stat
  local function cpu_s()
    local f = io.open("/proc/self/stat")
    if not f then return 0 end
    local st = f:read("a"):gsub("^.*%) ", "")
    f:close()
    local v = {}
    for w in st:gmatch("%S+") do v[#v + 1] = w end
    return (tonumber(v[12]) + tonumber(v[13])) / 100 -- utime, stime (fields 14, 15) in clock ticks (USER_HZ 100)
  end
  step(); step() -- kernels, memory plan
  dist.barrier()
  local t0, c0, ar, win = clock.now(), cpu_s(), 0, 0
  for _ = 1, steps do
    ar = ar + step()
    if nb > 0 then win = win + select(3, core.dist.bucket_stats(net.core)) end
  end
  local dt = clock.now() - t0
  local cpu = dist.max((cpu_s() - c0) / dt)
  dt = dist.max(dt)
  if dist.is_main() then
    print(("STEPS %s ranks=%d global_batch=%d steps=%d seconds=%.3f samples_per_s=%.3f allreduce_s=%.3f " ..
      "buckets=%d overlap_s=%.3f cpu_per_wall=%.2f"):format(cfg, dist.size(), global, steps, dt, steps * global / dt,
      ar, nb, win, cpu))
  end
  return
end

-- ------------------------------------------------------------------------------------------------ the driver
if not core.dist.compiled() or not os.execute("command -v mpirun >/dev/null 2>&1") then
  print("bench/allreduce.lua: skipped (no MPI in this build or no mpirun: install libopenmpi-dev openmpi-bin, rebuild)")
  return
end

local function loadavg() return sh("cat /proc/loadavg"):match("^(%S+ %S+ %S+)") end

if mode == "--scaling" then
  local steps = tonumber(arg[2]) or 6
  local dev = ""
  for _, d in ipairs(lunet.devices()) do dev = dev ~= "" and dev or (d.name or "?") end
  print(("scaling, one thread per rank: %s; PoCL device %s; %s; load average before %s; %s UTC"):format(
    sh("grep -m1 'model name' /proc/cpuinfo"):match(":%s*(.-)%s*$") or "?", dev,
    sh("mpirun --version 2>&1"):match("([^\n]+)"), loadavg(), os.date("!%Y-%m-%d %H:%M")))
  local env = "POCL_MAX_PTHREAD_COUNT=1 "
  local mpirun = "mpirun --oversubscribe --allow-run-as-root --bind-to core -np " .. NP ..
    " -x LUA_PATH -x LUA_CPATH -x LUNET_CACHE_DIR -x POCL_MAX_PTHREAD_COUNT -x LUNET_BUCKET_MB "
  local function rate(out) return tonumber(out:match("samples_per_s=([%d%.]+)")) end
  for _, c in ipairs({ { "3d_fullres", steps }, { "2d", steps * 4 } }) do
    local cmd = ("lua5.4 bench/allreduce.lua --steps %d %s 2>&1"):format(c[2], c[1])
    -- one process on one core (taskset), as each rank gets one
    local one = sh(env .. "taskset -c 0 " .. cmd)
    io.write(one)
    local s1, res = rate(one), {}
    -- 25 MB (DDP's default: one bucket for these small networks), 2 MB (several), 0 (after the backward)
    for _, mb in ipairs({ "25", "2", "0" }) do
      local out = sh(env .. "LUNET_BUCKET_MB=" .. mb .. " " .. mpirun .. cmd)
      io.write(out)
      local s2 = rate(out)
      res[#res + 1] = s1 and s2 and ("%.2fx at %s MB (%.3f samples/s, %s buckets)"):format(s2 / s1, mb, s2,
        out:match("buckets=(%d+)")) or ("? at " .. mb .. " MB")
    end
    print(("ct_iso %s, global batch %s, 1 process %s samples/s; 2 ranks / 1 process: %s"):format(c[1],
      one:match("global_batch=(%d+)") or "?", s1 and ("%.3f"):format(s1) or "?", table.concat(res, ", ")))
  end
  print(("load average after: %s"):format(loadavg()))
  return
end

local reps, steps = tonumber(arg[1]) or 5, tonumber(arg[2]) or 6
local cpu = sh("grep -m1 'model name' /proc/cpuinfo"):match(":%s*(.-)%s*$") or "?"
local load = sh("cat /proc/loadavg"):match("^(%S+ %S+ %S+)")
local ver = sh("mpirun --version 2>&1"):match("([^\n]+)")
print(("machine: %s, %s cores; load average %s; %s; device: PoCL CPU shared by the ranks"):format(cpu,
  sh("nproc"):gsub("%s", ""), load, ver))
local mpirun = "mpirun --oversubscribe --allow-run-as-root -np " .. NP .. " -x LUA_PATH -x LUA_CPATH -x LUNET_CACHE_DIR "
io.write(sh(mpirun .. "lua5.4 bench/allreduce.lua --allreduce " .. reps .. " 2>&1"))
for _, c in ipairs({ { "2d", steps * 4 }, { "3d_fullres", steps } }) do
  local one = sh(("lua5.4 bench/allreduce.lua --steps %d %s 2>&1"):format(c[2], c[1]))
  local two = sh(mpirun .. ("lua5.4 bench/allreduce.lua --steps %d %s 2>&1"):format(c[2], c[1]))
  io.write(one, two)
  local s1 = tonumber(one:match("samples_per_s=([%d%.]+)"))
  local s2 = tonumber(two:match("samples_per_s=([%d%.]+)"))
  local g = one:match("global_batch=(%d+)")
  if s1 and s2 then
    print(("throughput ct_iso %s, global batch %s: 2 ranks / 1 process = %.2fx (%.2f vs %.2f samples/s)"):format(c[1],
      g, s2 / s1, s2, s1))
  end
end
print(("load average after: %s"):format(loadavg()))
