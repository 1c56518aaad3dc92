-- Held-out Dice of mixed precision on the tensor-core path against fp32 (issue #25's quality check): the demo
-- dataset (real MRI, Colin27 brain mask, 2-D slices) planned with the integration spec's narrow rules, fold 0
-- trained twice through `lunet train` with the same seed and batches, once precision = "fp32" and once
-- "mixed", then each fold's final validation (sliding-window prediction of the held-out cases, lunet.evaluate)
-- gives validation/summary.json. Goal: |Dice(mixed) - Dice(fp32)| <= 0.01, on the means over the seeds.
--   lua5.4 bench/mixed_dice.lua [epochs] [iterations per epoch] [slice step] [seeds]
-- seeds (default 1): both precisions trained with seeds 0 .. seeds - 1. One changed rounding anywhere in
-- training moves a run's held-out Dice as much as another seed does (fp32 alone spread 0.026 over 5 seeds on
-- PoCL), so one pair of runs says little; on a GPU the device script trains 5 of each.
-- Run it where the GPU kernels run: on a GPU, mixed precision goes through the implicit GEMM, on mma.sync
-- where the device probe passed. On PoCL, LUNET_DEVICE_CLASS=gpu LUNET_CONV_MMA=emulate puts the mixed run on
-- the emulated m16n8k16 fragments (the same f16 rounding, f32 sums); fp32 keeps the direct float32 kernels in
-- both cases, as it does on a GPU.
local lunet = require "lunet"
local json = require "lunet.util.json"
local clock = require "lunet.util.clock"

local EPOCHS = tonumber(arg and arg[1]) or 10
local ITERS = tonumber(arg and arg[2]) or 25
local STEP = tonumber(arg and arg[3]) or 4
local SEEDS = tonumber(arg and arg[4]) or 1
local NAME = "Dataset100_ColinBrainMask"

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local root = os.tmpname()
os.remove(root)
local env = ("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre nnUNet_results=%s/res"):format(q(root), q(root), q(root))

local function lunet_cmd(args)
  local p = assert(io.popen(env .. " scripts/lunet " .. args .. " 2>&1"))
  local out = p:read("a")
  if not p:close() then
    os.execute("rm -rf " .. q(root))
    error("lunet " .. args .. " failed:\n" .. out, 2)
  end
  return out
end

local dev = lunet.devices()[1 + (tonumber(os.getenv("LUNET_DEVICE")) or 0)] or lunet.devices()[1]
local loadavg = io.open("/proc/loadavg")
print(("device: %s (%s); kernel class %s; conv.mma %s; conv.igemm %s; load %s"):format(dev.name, dev.type,
  os.getenv("LUNET_DEVICE_CLASS") or "auto", os.getenv("LUNET_CONV_MMA") or "auto",
  os.getenv("LUNET_CONV_IGEMM") or "auto", loadavg and loadavg:read("l") or "?"))
if loadavg then loadavg:close() end
local avail = lunet.core.conv.mma_available()
print(("mma.sync probe: f16 %s, tf32 %s, ldmatrix %s"):format(tostring(avail.f16), tostring(avail.tf32),
  tostring(avail.ldmatrix)))

os.execute("mkdir -p " .. q(root .. "/raw"))
require("lunet.demo").make_dataset(root .. "/raw", { step = STEP })
lunet_cmd("plan-and-preprocess " .. NAME .. " -c 2d -pl spec/fixtures/integration/tiny_rules.lua -q")

-- held-out Dice of fold 0 trained in this precision with this seed
local function train(precision, seed)
  local name = ("mix_%s_%d"):format(precision, seed)
  local tr = ("%s/%s.lua"):format(root, name)
  local f = assert(io.open(tr, "w"))
  f:write(("return { name = '%s', precision = '%s', num_epochs = %d, num_iterations_per_epoch = %d, "
    .. "num_val_iterations_per_epoch = 4, save_every = %d }\n"):format(name, precision, EPOCHS, ITERS, EPOCHS))
  f:close()
  local t0 = clock.now()
  lunet_cmd(("train %s 2d 0 -p TinyPlans -tr %s --seed %d -q"):format(NAME, tr, seed))
  local summary = json.read(("%s/res/%s/%s__TinyPlans__2d/fold_0/validation/summary.json"):format(root, NAME, name))
  local dice = summary.foreground_mean.Dice
  print(("%-5s seed %d, %d steps, %.0f s: held-out Dice %.4f over %d cases"):format(precision, seed, EPOCHS * ITERS,
    clock.now() - t0, dice, #summary.metric_per_case))
  return dice
end

local mean = {}
for _, precision in ipairs({ "fp32", "mixed" }) do
  local sum, lo, hi = 0, math.huge, -math.huge
  for seed = 0, SEEDS - 1 do
    local v = train(precision, seed)
    sum, lo, hi = sum + v, math.min(lo, v), math.max(hi, v)
  end
  mean[precision] = sum / SEEDS
  print(("%-5s over %d seed(s): mean held-out Dice %.4f (%.4f .. %.4f)"):format(precision, SEEDS, mean[precision], lo, hi))
end
os.execute("rm -rf " .. q(root))
local d = mean.mixed - mean.fp32
print(("mixed - fp32: %+.4f (goal |difference| <= 0.01: %s)"):format(d, math.abs(d) <= 0.01 and "met" or "NOT met"))
