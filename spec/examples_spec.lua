-- The examples run as documented, each with a tiny schedule on a small slice of the demo dataset.
local function run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok, out, code
end

describe("examples", function()
  local work = os.tmpname()
  os.remove(work)
  setup(function() os.execute("mkdir -p " .. work) end)
  teardown(function() os.execute("rm -rf " .. work) end)

  it("pipeline.lua runs every stage from Lua and scores the held-out slices", function()
    local ok, out = run(string.format("LUNET_EXAMPLE_EPOCHS=1 LUNET_EXAMPLE_ITERS=2 LUNET_EXAMPLE_STEP=8 " ..
      "lua5.4 examples/pipeline.lua %s/pipe", work))
    assert.is_true(ok, out)
    assert.matches("15 training cases", out)
    local dice = tonumber(out:match("held%-out Dice %(brain%): ([%d.]+)"))
    assert.is_not_nil(dice, out)
    -- two iterations cannot segment well, but a broken stage gives 0 or NaN
    assert.is_true(dice > 0.05 and dice <= 1, out)
  end)

  it("predict_in_memory.lua segments one image from the pipeline's model without writing files", function()
    local model = work .. "/pipe/results/Dataset100_ColinBrainMask/nnUNetTrainer__nnUNetPlans__2d"
    local raw = work .. "/pipe/raw/Dataset100_ColinBrainMask"
    local img = raw .. "/imagesTs/colin_z043_0000.nii.gz"
    local ok, out = run(string.format("lua5.4 examples/predict_in_memory.lua %s %s %s", model, img,
      raw .. "/labelsTs/colin_z043.nii.gz"))
    assert.is_true(ok, out)
    assert.matches("segmentation 1x108x90", out)
    assert.is_not_nil(tonumber(out:match("Dice against .-: ([%d.]+)")), out)
  end)

  it("compare_rules.lua shows the custom rules' bigger patch and extra stage", function()
    local ok, out = run(string.format("LUNET_EXAMPLE_DIR=%s/pipe lua5.4 examples/compare_rules.lua", work))
    assert.is_true(ok, out)
    assert.matches("patch_size   default %[112, 96%]%s+custom %[224, 192%]", out)
    assert.matches("features     default %[32, 64, 128, 256, 512%] custom %[32, 64, 128, 256, 512, 512%]", out)
  end)

  it("the trainer files load as trainer overrides", function()
    local trainer = require "lunet.trainer"
    local t = trainer.load_trainer_file("examples/short_trainer.lua")
    assert.equal("short_trainer", t.name)
    assert.equal(20, t.num_epochs)
    assert.equal(2, t.loss.weight_dice)
    local d = trainer.load_trainer_file("examples/demo_trainer.lua")
    assert.equal("demo_trainer", d.name)
  end)
end)
