--[[ bench/net_memory.lua: what one network holds on nnU-Net's real plans (issue #30), Lunet only, one process:
  . scripts/env.sh && lua5.4 bench/net_memory.lua predict ct3d|ct2d   one inference forward at the planned patch,
                                                                      batch 1 (a sliding-window step)
  . scripts/env.sh && lua5.4 bench/net_memory.lua train ct2d|ct3d [batch] [steps]   one training step (DS DC+CE,
                                                                      SGD) at the planned patch and batch; with steps > 1
                                                                      the further steps are timed (ms/step, and the
                                                                      buffer pool's allocations after the first step)
Prints the flat parameter/gradient/momentum bytes made, the planned activation (+ gradient) bytes, the buffer
pool's peak, in-use and cached bytes, and the process's peak RSS (on PoCL the pool is host memory). Compare with
nnunetv2 through bench/predict.lua and bench/train_step.lua. ]]
local lunet = require "lunet"

local PLANS = "spec/fixtures/plans/abdomen_ct_lowres/nnUNetPlans.json"
local CFG = { ct3d = "3d_fullres", ct2d = "2d" }
local mode, which = arg[1], arg[2]
if (mode ~= "predict" and mode ~= "train") or not CFG[which] then
  io.stderr:write("usage: lua5.4 bench/net_memory.lua predict|train ct3d|ct2d [batch]\n")
  os.exit(2)
end
local conf = lunet.net.configuration(require("lunet.util.json").decode(io.open(PLANS):read("a")), CFG[which])
local batch = mode == "predict" and 1 or math.tointeger(tonumber(arg[3]) or conf.batch_size)
local steps = math.tointeger(tonumber(arg[4]) or 1)
local shape = { batch, 1 }
local n = batch
for _, s in ipairs(conf.patch_size) do
  shape[#shape + 1] = math.tointeger(s)
  n = n * s
end
local net = lunet.net(PLANS, CFG[which], 1, 3, { init = mode == "train" })
local t0 = os.time()
if mode == "predict" then
  net:forward(lunet.core.zeros(shape, "f32"))
else
  local xs, ss = {}, {}
  for i = 1, n do xs[i] = math.random() * 2 - 1; ss[i] = math.random(0, 2) end
  local x = lunet.tensor(xs, { shape = shape }):to_device()
  shape[2] = 1
  local seg = lunet.tensor(ss, { shape = shape }):to_device()
  xs, ss = nil, nil
  collectgarbage()
  net:train_step { data = x, target = seg, batch_dice = false }
  if steps > 1 then
    lunet.core.finish()
    local a0, t1 = lunet.core.pool_stats().allocs, lunet.core.now()
    for _ = 2, steps do net:train_step { data = x, target = seg, batch_dice = false } end
    lunet.core.finish()
    print(("%d further steps: %.0f ms/step, %d pool allocations"):format(steps - 1,
      (lunet.core.now() - t1) * 1e3 / (steps - 1), lunet.core.pool_stats().allocs - a0))
  end
end
lunet.core.finish()
local s = lunet.core.pool_stats()
local hwm = 0
for l in io.lines("/proc/self/status") do hwm = tonumber(l:match("^VmHWM:%s+(%d+)")) or hwm end
local function mb(b) return b / 2 ^ 20 end
print(("%s %s %s batch %d: %d s; flat buffers %.0f MB, activations%s %.0f MB, pool peak %.0f MB (in use %.0f, cached " ..
  "%.0f), peak RSS %.0f MB"):format(mode, which, table.concat(conf.patch_size, "x"), batch, os.time() - t0,
  mb(net.core:flat_bytes()), mode == "train" and " + gradients" or "", mb(net.core:activation_bytes()), mb(s.peak),
  mb(s.in_use), mb(s.cached), hwm / 1024))
