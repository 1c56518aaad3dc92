-- Mixed precision against fp32 on the demo dataset (real MRI, Colin27 brain mask, a slice subset): the same
-- plan, seed and batches trained twice through `lunet train`, once with precision = "fp32" and once with
-- "mixed" (float16 activations and activation gradients, GradScaler). The loss curves must agree within
-- 0.05 per epoch (losses run from about 0.1 down to -0.65; float16 storage moved them by at most 0.02 when
-- this was written) and the final EMA pseudo Dice within 0.01; and they must differ somewhere, or the
-- mixed run stored nothing as float16 and the comparison proves nothing.
--
-- On the CPU's own kernel class the float16 activations go through float32 copies on the direct kernels
-- (250 steps, ~30 s). Under LUNET_DEVICE_CLASS=gpu they run the implicit-GEMM kernels GPUs run, which are
-- slow on PoCL, so that pass trains 2 epochs of 5 steps and compares the losses only.
local checkpoint = require "lunet.io.checkpoint"
local common = require "spec.support.common"

local gpu_class = os.getenv("LUNET_DEVICE_CLASS") == "gpu"
local EPOCHS, ITERS = gpu_class and 2 or 10, gpu_class and 5 or 25

describe("mixed precision", function()
  local root = os.tmpname()
  os.remove(root)
  local env = string.format("%s nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre nnUNet_results=%s/res", common.env_prefix(),
    root, root, root)
  local name = "Dataset100_ColinBrainMask"

  local function lunet_cmd(args)
    local ok, out = common.run(env .. " scripts/lunet " .. args)
    assert(ok, "lunet " .. args .. " failed:\n" .. out)
    return out
  end

  setup(function()
    os.execute("mkdir -p " .. root .. "/raw")
    require("lunet.demo").make_dataset(root .. "/raw", { step = 4 })
    lunet_cmd("plan-and-preprocess " .. name .. " -c 2d -pl spec/fixtures/integration/tiny_rules.lua -q")
  end)
  teardown(function() os.execute("rm -rf " .. root) end)

  local function train(precision)
    local tr = ("%s/mix_%s.lua"):format(root, precision)
    common.writefile(tr, ("return { name = 'mix_%s', precision = '%s', num_epochs = %d, num_iterations_per_epoch = %d, "
      .. "num_val_iterations_per_epoch = 4, save_every = %d }\n"):format(precision, precision, EPOCHS, ITERS, EPOCHS))
    lunet_cmd(("train %s 2d 0 -p TinyPlans -tr %s -q"):format(name, tr))
    local fold = ("%s/res/%s/mix_%s__TinyPlans__2d/fold_0"):format(root, name, precision)
    local ck = checkpoint.read(fold .. "/checkpoint_final.pth")
    return ck.meta.logging
  end

  it(("trains to the same loss curve and pseudo Dice as fp32 (%d steps)"):format(EPOCHS * ITERS), function()
    local f32 = train("fp32")
    local mix = train("mixed")
    assert.are.equal(EPOCHS, #f32.train_losses)
    assert.are.equal(EPOCHS, #mix.train_losses)
    local differs = false
    for e = 1, EPOCHS do
      local a, b = f32.train_losses[e], mix.train_losses[e]
      assert(math.abs(a - b) <= 0.05, ("epoch %d: train loss fp32 %.4f, mixed %.4f"):format(e, a, b))
      local va, vb = f32.val_losses[e], mix.val_losses[e]
      assert(math.abs(va - vb) <= 0.05, ("epoch %d: validation loss fp32 %.4f, mixed %.4f"):format(e, va, vb))
      differs = differs or a ~= b or va ~= vb
    end
    assert(differs, "mixed and fp32 gave bit-identical losses: nothing was stored as float16")
    if not gpu_class then
      local da, db = f32.ema_fg_dice[EPOCHS], mix.ema_fg_dice[EPOCHS]
      assert(da > 0.7, "fp32 pseudo Dice " .. da .. ": the run did not learn, the comparison would be empty")
      assert(math.abs(da - db) <= 0.01, ("final EMA pseudo Dice fp32 %.4f, mixed %.4f"):format(da, db))
    end
  end)
end)
