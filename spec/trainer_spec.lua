-- Trainer (nnUNetTrainer.run_training): end-to-end 2-D training on a synthetic "bright disc" dataset with a tiny U-Net,
-- the pseudo Dice rises, kill -9 / SIGTERM and --continue resume exactly (same losses as an uninterrupted run),
-- trainer-file overrides, results layout, log, debug.json, progress.png; plot helpers.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"

local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_trainer"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local DS = "Dataset950_Disc"

local function sh(cmd)
  local ok = os.execute(cmd)
  return ok
end

local disc = require "spec.support.disc"
local function env_prefix() return disc.env_prefix(RAW, PRE, RES, ROOT) end

local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function wait_for(pred, timeout)
  local t0 = lunet.util.clock.now()
  while lunet.util.clock.now() - t0 < timeout do
    if pred() then return true end
    sh("sleep 0.1")
  end
  return false
end

-- 10 cases of 64x64 grey PNGs: a bright noisy disc (label 1) on a darker noisy background.
local function make_dataset()
  sh("mkdir -p " .. PRE .. " " .. RES)
  disc.write(RAW, DS, { cases = 10, size = 64, seed = 7, centre = { 20, 24 }, radius = { 8, 6 } })
  assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 950 -c 2d -q > " .. DIR .. "/pp.log 2>&1"),
    "plan_and_preprocess failed: " .. DIR .. "/pp.log")
  -- a tiny U-Net (same topology as the plan, 4..16 features) keeps the spec fast
  local p = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
  p.plans_name = "TinyPlans"
  local kw = p.configurations["2d"].architecture.arch_kwargs
  local f = json.array {}
  for s = 1, kw.n_stages do f[s] = math.min(16, 4 << (s - 1)) end
  kw.features_per_stage = f
  json.write(PRE .. "/" .. DS .. "/TinyPlans.json", p)
end

local function run_cli(args, log)
  return sh(env_prefix() .. LUNET .. " train " .. args .. " -q > " .. log .. " 2>&1")
end

local function fold_dir(trainer, fold)
  return ("%s/%s/%s__TinyPlans__2d/fold_%s"):format(RES, DS, trainer, tostring(fold))
end

local function logging_of(ck)
  local h = lunet.net.read_header(ck)
  return h.meta
end

describe("trainer", function()
  setup(function() make_dataset() end)
  teardown(function() sh("rm -rf " .. DIR) end)

  describe("end-to-end 2-D training", function()
    local F
    setup(function()
      local ok = run_cli(DS .. " 2d 0 -p TinyPlans --epochs 5 --iters 8 --val-iters 3 --seed 3", DIR .. "/a.log")
      assert(ok, readfile(DIR .. "/a.log"))
      F = fold_dir("nnUNetTrainer", 0)
    end)

    it("writes nnU-Net's results layout", function()
      local M = paths.dirname(F)
      for _, n in ipairs({ "plans.json", "dataset.json", "dataset_fingerprint.json" }) do
        assert.is_true(paths.isfile(M .. "/" .. n), n)
      end
      assert.are.equal(readfile(PRE .. "/" .. DS .. "/TinyPlans.json"), readfile(M .. "/plans.json"))
      assert.is_true(paths.isfile(F .. "/checkpoint_final.pth"))
      assert.is_true(paths.isfile(F .. "/checkpoint_best.pth"))
      assert.is_false(paths.isfile(F .. "/checkpoint_latest.pth")) -- deleted at the end, as nnU-Net
      assert.is_true(paths.isfile(PRE .. "/" .. DS .. "/splits_final.json"))
    end)

    it("the validation pseudo Dice rises and the EMA follows nnU-Net's 0.9/0.1 rule", function()
      local L = logging_of(F .. "/checkpoint_final.pth").logging
      assert.are.equal(5, #L.mean_fg_dice)
      assert.is_true(L.mean_fg_dice[5] > L.mean_fg_dice[1] + 0.2, json.encode(L.mean_fg_dice))
      assert.is_true(L.mean_fg_dice[5] > 0.6, json.encode(L.mean_fg_dice))
      assert.is_true(L.train_losses[5] < L.train_losses[1])
      assert.are.equal(L.mean_fg_dice[1], L.ema_fg_dice[1])
      for e = 2, 5 do
        assert.is_true(math.abs(L.ema_fg_dice[e] - (0.9 * L.ema_fg_dice[e - 1] + 0.1 * L.mean_fg_dice[e])) < 1e-12)
      end
      -- poly LR per epoch: 0.01 (1 - e/5)^0.9
      for e = 1, 5 do assert.is_true(math.abs(L.lrs[e] - 0.01 * (1 - (e - 1) / 5) ^ 0.9) < 1e-15) end
    end)

    it("writes the training log, debug.json and a readable progress.png", function()
      local logs = {}
      for _, n in ipairs(paths.listdir(F)) do
        if n:match("^training_log_%d+_%d+_%d+_%d%d_%d%d_%d%d%.txt$") then logs[#logs + 1] = n end
      end
      assert.are.equal(1, #logs)
      local text = readfile(F .. "/" .. logs[1])
      local epochs, dices = 0, 0
      for line in text:gmatch("[^\n]+") do
        assert.truthy(line:match("^%d%d%d%d%-%d%d%-%d%d %d%d:%d%d:%d%d%.%d%d%d%d%d%d: "), line)
        if line:match(": Epoch %d+$") then epochs = epochs + 1 end
        if line:match(": Pseudo dice %[[%d%.]+%]$") then dices = dices + 1 end
      end
      assert.are.equal(5, epochs)
      assert.are.equal(5, dices)
      assert.truthy(text:find(": Current learning rate: 0.01\n", 1, true))
      assert.truthy(text:find("Yayy! New best EMA pseudo Dice", 1, true))
      assert.truthy(text:find("Mean Validation Dice:", 1, true))
      local d = json.read(F .. "/debug.json")
      assert.are.equal("nnUNetTrainer", d.trainer_name)
      assert.are.equal(5, d.trainer.num_epochs)
      assert.are.equal(8, d.trainer.num_iterations_per_epoch)
      assert.are.equal(3, d.seed)
      assert.are.same({ 64, 64 }, { d.patch_size[1], d.patch_size[2] })
      local png = lunet.io.image.read(F .. "/progress.png")
      assert.are.same({ 3, 1, 990, 960 }, png.data.shape)
      -- not blank: the curves' colours are present
      local flat = png.data:flat()
      local n = 990 * 960
      local blue, red = 0, 0
      for i = 1, n do
        local r, g, b = flat[i], flat[n + i], flat[2 * n + i]
        if r == 31 and g == 119 and b == 180 then blue = blue + 1 end
        if r == 214 and g == 39 and b == 40 then red = red + 1 end
      end
      assert.is_true(blue > 500 and red > 100, ("blue %d red %d"):format(blue, red))
    end)

    it("validates the fold's cases into validation/ with summary.json", function()
      local s = json.read(F .. "/validation/summary.json")
      local splits = json.read(PRE .. "/" .. DS .. "/splits_final.json")
      assert.are.equal(#splits[1].val, #s.metric_per_case)
      for _, id in ipairs(splits[1].val) do assert.is_true(paths.isfile(F .. "/validation/" .. id .. ".png"), id) end
      assert.is_true(s.foreground_mean.Dice > 0.5, tostring(s.foreground_mean.Dice))
    end)

    it("--val-only --npz redoes the validation from checkpoint_final, with probabilities", function()
      local before = json.read(F .. "/validation/summary.json").foreground_mean.Dice
      assert(run_cli(DS .. " 2d 0 -p TinyPlans --val-only --npz", DIR .. "/v.log"), readfile(DIR .. "/v.log"))
      local s = json.read(F .. "/validation/summary.json")
      assert.is_true(math.abs(s.foreground_mean.Dice - before) < 1e-12)
      local id = json.read(PRE .. "/" .. DS .. "/splits_final.json")[1].val[1]
      local z = core.npz.read(F .. "/validation/" .. id .. ".npz")
      assert.are.same({ 2, 1, 64, 64 }, z.probabilities.shape)
      local pr = z.probabilities:flat()
      for i = 1, 64 * 64, 97 do assert.is_true(math.abs(pr[i] + pr[64 * 64 + i] - 1) < 1e-5) end
      assert.are.equal(readfile(PRE .. "/" .. DS .. "/nnUNetPlans_2d/lunet/" .. id .. ".json"),
        readfile(F .. "/validation/" .. id .. ".json"))
    end)

    it("--val_best validates with checkpoint_best's weights; --disable_checkpointing writes none (nnU-Net's flags)",
      function()
      assert(run_cli(DS .. " 2d 0 -p TinyPlans --val-only --val_best", DIR .. "/vb.log"), readfile(DIR .. "/vb.log"))
      local logs = {}
      for _, n in ipairs(paths.listdir(F)) do if n:match("^training_log_") then logs[#logs + 1] = readfile(F .. "/" .. n) end end
      assert.truthy(table.concat(logs):find("Validating with checkpoint_best.pth (--val_best)", 1, true))
      assert.is_true(paths.isfile(F .. "/validation/summary.json"))
      -- a short run of another fold without checkpoints
      assert(run_cli(DS .. " 2d 3 -p TinyPlans --epochs 1 --iters 2 --val-iters 1 --disable_checkpointing",
        DIR .. "/nc.log"), readfile(DIR .. "/nc.log"))
      local F3 = fold_dir("nnUNetTrainer", 3)
      for _, n in ipairs(paths.listdir(F3)) do assert.is_nil(n:match("%.pth$"), n) end
      assert.is_true(paths.isfile(F3 .. "/validation/summary.json"))
      local o, code = require("lunet.cli.train").parse({ DS, "2d", "0", "--val_best", "--disable_checkpointing" })
      assert.is_nil(o)
      assert.are.equal(2, code)
    end)
  end)

  it("kill -9 then --continue loses only the epochs since the checkpoint and continues as if uninterrupted", function()
    local tf = DIR .. "/every_epoch.lua"
    local f = assert(io.open(tf, "w"))
    f:write('return { name = "EveryEpoch", save_every = 1 }\n')
    f:close()
    local args = DS .. " 2d 1 -p TinyPlans -tr " .. tf .. " --epochs 6 --iters 6 --val-iters 2 --seed 5 -q"
    -- uninterrupted reference run (fold 1, in another results root)
    local ref_res = DIR .. "/res_ref"
    assert(sh(env_prefix():gsub("nnUNet_results=%S+", "nnUNet_results=" .. ref_res) .. LUNET .. " train " .. args ..
      " > " .. DIR .. "/ref.log 2>&1"), readfile(DIR .. "/ref.log"))
    local F = fold_dir("EveryEpoch", 1)
    local p = io.popen(env_prefix() .. "exec " .. LUNET .. " train " .. args .. " > " .. DIR .. "/k.log 2>&1 & echo $!")
    local pid = p:read("l")
    p:close()
    assert.truthy(pid:match("^%d+$"))
    -- wait until the epoch-2 checkpoint is written, then kill -9
    local got = wait_for(function()
      if not paths.isfile(F .. "/checkpoint_latest.pth") then return false end
      local ok, h = pcall(lunet.net.read_header, F .. "/checkpoint_latest.pth")
      return ok and h.meta.current_epoch >= 2
    end, 150)
    assert.is_true(got, "no checkpoint_latest: " .. readfile(DIR .. "/k.log"))
    sh("kill -9 " .. pid)
    sh("sleep 0.3")
    local at = math.tointeger(lunet.net.read_header(F .. "/checkpoint_latest.pth").meta.current_epoch)
    assert.is_false(paths.isfile(F .. "/checkpoint_final.pth"), "killed too late")
    assert(sh(env_prefix() .. LUNET .. " train " .. args .. " --continue > " .. DIR .. "/c.log 2>&1"), readfile(DIR .. "/c.log"))
    local L = logging_of(F .. "/checkpoint_final.pth").logging
    local R = logging_of(ref_res .. "/" .. DS .. "/EveryEpoch__TinyPlans__2d/fold_1/checkpoint_final.pth").logging
    assert.are.equal(6, #L.train_losses)
    for e = 1, 6 do
      assert.is_true(math.abs(L.train_losses[e] - R.train_losses[e]) <= 1e-5 * math.abs(R.train_losses[e]) + 1e-6,
        ("epoch %d: %g vs %g (resumed at %d)"):format(e - 1, L.train_losses[e], R.train_losses[e], at))
      assert.is_true(math.abs(L.mean_fg_dice[e] - R.mean_fg_dice[e]) <= 1e-3)
    end
    -- the resumed run logged where it continued from
    local logs = {}
    for _, n in ipairs(paths.listdir(F)) do if n:match("^training_log_") then logs[#logs + 1] = readfile(F .. "/" .. n) end end
    local all = table.concat(logs)
    assert.truthy(all:find("Continuing from checkpoint_latest.pth: epoch " .. at, 1, true), all)
  end)

  it("SIGTERM saves checkpoint_latest mid-epoch and --continue resumes at that iteration", function()
    -- long enough epochs that the signal lands inside one whatever the machine's load
    local args = DS .. " 2d 2 -p TinyPlans --epochs 3 --iters 200 --val-iters 1 --seed 9 -q"
    local F = fold_dir("nnUNetTrainer", 2)
    local p = io.popen(env_prefix() .. "exec " .. LUNET .. " train " .. args .. " > " .. DIR .. "/t.log 2>&1 & echo $!")
    local pid = p:read("l")
    p:close()
    -- wait for the first epoch line in the log, then a little into the epoch
    assert.is_true(wait_for(function()
      for _, n in ipairs(paths.isdir(F) and paths.listdir(F) or {}) do
        if n:match("^training_log_") and readfile(F .. "/" .. n):find("Current learning rate", 1, true) then return true end
      end
      return false
    end, 150), readfile(DIR .. "/t.log"))
    sh("sleep 1.5; kill -TERM " .. pid)
    assert.is_true(wait_for(function() return paths.isfile(F .. "/checkpoint_latest.pth") end, 60), readfile(DIR .. "/t.log"))
    sh("sleep 0.5")
    local meta = lunet.net.read_header(F .. "/checkpoint_latest.pth").meta
    assert.is_true(meta.current_epoch < 3, tostring(meta.current_epoch))
    assert.is_true(meta.iteration > 0 and meta.iteration < 200, tostring(meta.iteration))
    assert.are.equal(meta.iteration, #meta.epoch_losses)
    assert.are.equal(meta.iteration, meta.train_loader.counter)
    assert(sh(env_prefix() .. LUNET .. " train " .. args .. " --continue > " .. DIR .. "/t2.log 2>&1"), readfile(DIR .. "/t2.log"))
    local L = logging_of(F .. "/checkpoint_final.pth").logging
    assert.are.equal(3, #L.train_losses)
  end)

  it("--continue reports a corrupted checkpoint and continues from the next one in nnU-Net's order", function()
    local F = fold_dir("nnUNetTrainer", 2)
    local ck = F .. "/checkpoint_final.pth"
    local bytes = readfile(ck)
    -- a byte inside the first weight tensor's storage (found by its bytes), not in zip padding
    local P = core.pickle
    local w = P.torch_load(ck).network_weights
    local at = assert(bytes:find(w[P.keys(w)[1]]:bytes(), 1, true)) + 3
    local f = assert(io.open(ck, "wb"))
    f:write(bytes:sub(1, at - 1), string.char(bytes:byte(at) ~ 0x40), bytes:sub(at + 1))
    f:close()
    local args = DS .. " 2d 2 -p TinyPlans --epochs 3 --iters 5 --val-iters 1 --seed 9 -q"
    assert(sh(env_prefix() .. LUNET .. " train " .. args .. " --continue > " .. DIR .. "/cc.log 2>&1"), readfile(DIR .. "/cc.log"))
    local logs = {}
    for _, n in ipairs(paths.listdir(F)) do if n:match("^training_log_") then logs[#logs + 1] = readfile(F .. "/" .. n) end end
    local all = table.concat(logs)
    assert.truthy(all:find("cannot continue from checkpoint_final.pth", 1, true), all)
    assert.truthy(all:find("CRC", 1, true), all)
    assert.truthy(all:find("Continuing from checkpoint_best.pth instead of checkpoint_final.pth", 1, true), all)
    -- the training finished again: a sound checkpoint_final
    assert.are.equal(3, #logging_of(ck).logging.train_losses)
  end)

  it("precision = mixed: the loss scaler trains and its state lands in nnU-Net's grad_scaler_state", function()
    local tf = DIR .. "/mixed.lua"
    local f = assert(io.open(tf, "w"))
    f:write('return { name = "Mixed", precision = "mixed", grad_scaler = { growth_interval = 4 } }\n')
    f:close()
    assert(run_cli(DS .. " 2d 4 -p TinyPlans -tr " .. tf .. " --epochs 2 --iters 3 --val-iters 1 --seed 3",
      DIR .. "/mixed.log"), readfile(DIR .. "/mixed.log"))
    local tree = core.pickle.torch_load(fold_dir("Mixed", 4) .. "/checkpoint_final.pth")
    local g = tree.grad_scaler_state
    -- 6 clean steps with growth_interval 4: one growth, tracker 2
    assert.are.equal(131072.0, g.scale)
    assert.are.equal(2, g._growth_tracker)
    assert.are.equal(4, g.growth_interval)
    local L = logging_of(fold_dir("Mixed", 4) .. "/checkpoint_final.pth").logging
    assert.are.equal(2, #L.train_losses)
    for _, l in ipairs(L.train_losses) do assert.is_true(l == l and math.abs(l) < 10) end
  end)

  it("staged batch uploads (LUNET_STAGING=1, the GPU default) train exactly as uploads inside the step", function()
    local L = {}
    for _, v in ipairs({ "0", "1" }) do
      local name = "Staging" .. v
      local tf = DIR .. "/" .. name .. ".lua"
      local f = assert(io.open(tf, "w"))
      f:write(('return { name = %q }\n'):format(name))
      f:close()
      assert(sh("LUNET_STAGING=" .. v .. " " .. env_prefix() .. LUNET .. " train " .. DS .. " 2d 4 -p TinyPlans -tr " ..
        tf .. " --epochs 2 --iters 6 --val-iters 1 --seed 5 -q > " .. DIR .. "/" .. name .. ".log 2>&1"),
        readfile(DIR .. "/" .. name .. ".log"))
      L[v] = logging_of(fold_dir(name, 4) .. "/checkpoint_final.pth").logging
      local logs = {}
      for _, n in ipairs(paths.listdir(fold_dir(name, 4))) do
        if n:match("^training_log_") then logs[#logs + 1] = readfile(fold_dir(name, 4) .. "/" .. n) end
      end
      assert.are.equal(v == "1", table.concat(logs):find("staged on a transfer queue", 1, true) ~= nil)
    end
    assert.are.same(L["0"].train_losses, L["1"].train_losses)
    assert.are.same(L["0"].mean_fg_dice, L["1"].mean_fg_dice)
  end)

  describe("trainer files", function()
    it("override epochs, LR, augmentation and name the results folder", function()
      local tf = DIR .. "/my_trainer.lua"
      local f = assert(io.open(tf, "w"))
      f:write('local t = { name = "MyTrainer", num_epochs = 2, initial_lr = 0.02 }\n',
        't.augmentation = { gamma = { p = 0 }, mirror = { p_per_axis = 0 } }\nreturn t\n')
      f:close()
      assert(run_cli(DS .. " 2d 3 -p TinyPlans -tr " .. tf .. " --iters 2 --val-iters 1", DIR .. "/tf.log"), readfile(DIR .. "/tf.log"))
      local F = fold_dir("MyTrainer", 3)
      local d = json.read(F .. "/debug.json")
      assert.are.equal(2, d.trainer.num_epochs)
      assert.are.equal(0.02, d.trainer.initial_lr)
      assert.are.equal(0, d.trainer.augmentation.gamma.p)
      assert.are.equal(0.7, d.trainer.augmentation.gamma.gamma[1]) -- merged key by key
      assert.are.equal(0.99, d.trainer.momentum)                    -- untouched defaults
      local L = logging_of(F .. "/checkpoint_final.pth").logging
      assert.are.equal(2, #L.lrs)
      assert.are.equal(0.02, L.lrs[1])
    end)

    it("report errors with the file and line", function()
      local trainer = require "lunet.trainer"
      local bad = DIR .. "/bad.lua"
      local f = assert(io.open(bad, "w"))
      f:write("return {\n  num_epochs = 2,\n  initial_lr = 1e-2 +\n}\n")
      f:close()
      local ok, err = pcall(trainer.load_trainer_file, bad)
      assert.is_false(ok)
      assert.truthy(err:find(bad .. ":4:", 1, true), err)
      f = assert(io.open(bad, "w"))
      f:write("local x = nil\nlocal y = 1\nreturn { num_epochs = x.y }\n")
      f:close()
      ok, err = pcall(trainer.load_trainer_file, bad)
      assert.is_false(ok)
      assert.truthy(err:find(bad .. ":3:", 1, true), err)
      local ov = trainer.load_trainer_file(DIR .. "/my_trainer.lua")
      ov.num_epoch = 3
      ok, err = pcall(trainer.settings, require("lunet.rules.default"), ov, "my_trainer.lua")
      assert.is_false(ok)
      assert.truthy(err:find("my_trainer.lua: unknown trainer setting 'num_epoch'", 1, true), err)
    end)
  end)

  it("pseudo Dice counts: argmax of the logits per sample, ignore-label voxels left out", function()
    local trainer = require "lunet.trainer"
    -- B = 2, C = 3, 1x4 voxels; logits pick classes {1, 2, 0, 1} and {2, 2, 1, 0}
    local logits = lunet.tensor({
      0, 0, 9, 0,  9, 0, 0, 9,  0, 9, 0, 0,
      0, 0, 0, 9,  0, 0, 9, 0,  9, 9, 0, 0,
    }, { shape = { 2, 3, 1, 4 }, dtype = "f32" })
    local target = lunet.tensor({ 1, 2, 3, 1, 2, 1, 1, 3 }, { shape = { 2, 1, 1, 4 }, dtype = "i32" })
    local cm = trainer._confusion(logits, target, { 1, 2 }, 3)
    -- non-ignored voxels (pred, ref): (1,1) (2,2) (1,1) | (2,2) (2,1) (1,1)
    assert.are.same({ 3, 0, 1 }, { cm[1].TP, cm[1].FP, cm[1].FN })
    assert.are.same({ 2, 1, 0 }, { cm[2].TP, cm[2].FP, cm[2].FN })
  end)

  it("trains with an ignore label end to end", function()
    local ds = "Dataset951_DiscIgn"
    sh("mkdir -p " .. RAW .. "/" .. ds)
    sh("cp -r " .. RAW .. "/" .. DS .. "/imagesTr " .. RAW .. "/" .. ds .. "/")
    sh("mkdir -p " .. RAW .. "/" .. ds .. "/labelsTr")
    for i = 0, 9 do
      local id = string.format("disc_%03d", i)
      local seg = lunet.io.image.read(RAW .. "/" .. DS .. "/labelsTr/" .. id .. ".png").data:flat()
      for k = 1, #seg do if (k - 1) % 64 < 8 then seg[k] = 2 end end -- the left 8 columns are not annotated
      lunet.io.image.write(RAW .. "/" .. ds .. "/labelsTr/" .. id .. ".png", lunet.tensor(seg, { shape = { 1, 1, 64, 64 }, dtype = "u8" }))
    end
    json.write(RAW .. "/" .. ds .. "/dataset.json", { channel_names = { ["0"] = "grey" },
      labels = { background = 0, disc = 1, ignore = 2 }, numTraining = 10, file_ending = ".png" })
    assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 951 -c 2d -q > " .. DIR .. "/pp2.log 2>&1"), readfile(DIR .. "/pp2.log"))
    local p = json.read(PRE .. "/" .. ds .. "/nnUNetPlans.json")
    p.plans_name = "TinyPlans"
    p.configurations["2d"].architecture.arch_kwargs.features_per_stage =
      json.read(PRE .. "/" .. DS .. "/TinyPlans.json").configurations["2d"].architecture.arch_kwargs.features_per_stage
    json.write(PRE .. "/" .. ds .. "/TinyPlans.json", p)
    assert(run_cli(ds .. " 2d 0 -p TinyPlans --epochs 4 --iters 8 --val-iters 3", DIR .. "/ig.log"), readfile(DIR .. "/ig.log"))
    local F = ("%s/%s/nnUNetTrainer__TinyPlans__2d/fold_0"):format(RES, ds)
    local L = logging_of(F .. "/checkpoint_final.pth").logging
    assert.are.equal(1, #L.dice_per_class_or_region[1]) -- one foreground class: the ignore label is not a class
    assert.is_true(L.mean_fg_dice[4] > L.mean_fg_dice[1], json.encode(L.mean_fg_dice))
    assert.are.equal(2, json.read(F .. "/debug.json").ignore_label)
    assert.is_true(paths.isfile(F .. "/validation/summary.json"))
  end)

  it("the CLI rejects bad arguments", function()
    local cli = require "lunet.cli.train"
    local o = cli.parse({ "4", "2d", "all", "--epochs", "3", "--continue", "--npz" })
    assert.are.equal("all", o.fold)
    assert.are.equal(3, o.epochs)
    assert.is_true(o.continue and o.npz)
    local saved = io.stderr
    io.stderr = io.open("/dev/null", "w")
    local _, code = cli.parse({ "4", "2d", "x" })
    local _, code2 = cli.parse({ "4", "2d", "0", "--epochs", "many" })
    local _, code3 = cli.parse({ "4", "2d", "0", "--bogus" })
    io.stderr:close()
    io.stderr = saved
    assert.are.same({ 2, 2, 2 }, { code, code2, code3 })
  end)
end)

describe("plot", function()
  local plot = require "lunet.util.plot"
  it("nice ticks cover the range with 1-2-5 steps", function()
    local t, lo, hi, step = plot.nice_ticks(0.013, 0.87, 5)
    assert.are.equal(0.2, step)
    assert.are.equal(0, lo)
    assert.is_true(math.abs(hi - 1.0) < 1e-12)
    assert.are.equal(6, #t)
    t, lo, hi, step = plot.nice_ticks(-0.62, 0.41, 5)
    assert.are.equal(0.25, step)
    assert.are.equal(-0.75, lo)
    assert.are.equal(0.5, hi)
  end)
  it("draws text glyphs and lines where asked", function()
    local c = plot.canvas(40, 20)
    c:text(1, 1, "1", { 0, 0, 0 }, 1)
    -- glyph "1" row 1 = 0x04: only column 2 set
    local function px(x, y) local i = y * 40 + x + 1; return c.r[i] end
    assert.are.same({ 255, 255, 0, 255, 255 }, { px(1, 1), px(2, 1), px(3, 1), px(4, 1), px(5, 1) })
    assert.are.equal(0, px(2, 7)) -- bottom row 0x0E
    c:line(0, 15, 39, 15, { 10, 20, 30 }, 1)
    for x = 0, 39 do assert.are.equal(10, px(x, 15)) end
    local t = c:tensor()
    assert.are.same({ 3, 1, 20, 40 }, t.shape)
    assert.are.equal(30, t:flat()[2 * 800 + 15 * 40 + 1])
  end)
end)
