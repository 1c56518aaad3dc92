-- Trainer variants by name (rules/trainers/): every shipped name resolves and sets what nnU-Net's class sets
-- (numbers read from nnunetv2 2.8.1's training/nnUNetTrainer/variants/), the search path ($LUNET_TRAINERS, ./,
-- rules/trainers/), unknown names list the available ones, unread keys are errors; two tiny trainings:
-- nnUNetTrainerNoMirroring (empty inference mirror axes, predict does not mirror) and a planning rule file's
-- trainer block with nnUNetTrainer_probabilisticOversampling (debug.json shows both took effect).
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local trainer = require "lunet.trainer"
local rules = require "lunet.rules.default"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"
local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_variants"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local DS = "Dataset951_DiscVariants"
local disc = require "spec.support.disc"

local function sh(cmd) return os.execute(cmd) end
local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end
local function writefile(p, s)
  local f = assert(io.open(p, "w"))
  f:write(s)
  f:close()
end

local function settings_of(name)
  local ov, n, src = trainer.find_trainer(name)
  local tr = trainer.settings(rules, ov, src)
  return tr, n, src
end

-- Python's round (half to even), as nnU-Net's probabilisticOversampling uses it
local function pyround(x) return rules.helpers.round(x) end
local function nnunet_prob_share(B, p)
  local n = 0
  for i = 0, B - 1 do if not (i < pyround(B * (1 - p))) then n = n + 1 end end
  return n / B
end

describe("trainer variants", function()
  describe("names", function()
    it("every shipped name loads and sets what nnU-Net's class sets", function()
      -- nnUNetTrainer.__init__: initial_lr 1e-2, weight_decay 3e-5, oversample 0.33, probabilistic False,
      -- 250 / 50 iterations, 1000 epochs, deep supervision, save_every 50; DC_and_CE smooth 1e-5, do_bg False
      local d = settings_of("nnUNetTrainer")
      assert.are.same({ 1e-2, 3e-5, 0.33, false, 250, 50, 1000, true, 50, 1e-5, false, 1, 1 },
        { d.initial_lr, d.weight_decay, d.oversample_foreground_percent, d.probabilistic_oversampling,
          d.num_iterations_per_epoch, d.num_val_iterations_per_epoch, d.num_epochs, d.enable_deep_supervision,
          d.save_every, d.loss.dice_smooth, d.loss.do_bg, d.loss.weight_ce, d.loss.weight_dice })
      assert.is_nil(trainer.mirror_axes(d, 2)) -- nnU-Net's default axes: (0, 1) / (0, 1, 2)
      assert.is_nil(trainer.mirror_axes(d, 3))

      -- nnUNetTrainer_Xepochs.py: num_epochs = X (the 1-epoch class is nnUNetTrainer_1epoch), nothing else
      for _, x in ipairs { 1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000 } do
        local tr, n = settings_of(("nnUNetTrainer_%depochs"):format(x))
        assert.are.equal(x, tr.num_epochs)
        assert.are.equal(("nnUNetTrainer_%depochs"):format(x), n)
        tr.num_epochs = 1000
        tr.name = nil
        local base = settings_of("nnUNetTrainer")
        base.name = nil
        assert.are.same(base, tr)
      end
      assert.are.equal(1, settings_of("nnUNetTrainer_1epoch").num_epochs)
      -- nnUNetTrainer_Xepochs_NoMirroring.py
      for _, x in ipairs { 250, 2000, 4000, 8000 } do
        local tr = settings_of(("nnUNetTrainer_%depochs_NoMirroring"):format(x))
        assert.are.equal(x, tr.num_epochs)
        assert.are.same({}, trainer.mirror_axes(tr, 3))
      end

      -- data_augmentation/nnUNetTrainerNoMirroring.py: mirror_axes None, inference_allowed_mirroring_axes None
      local nm = settings_of("nnUNetTrainerNoMirroring")
      assert.are.same({}, trainer.mirror_axes(nm, 2))
      assert.are.same({}, trainer.mirror_axes(nm, 3))
      -- nnUNetTrainer_onlyMirror01: (0,) for 2d, (0, 1) for 3d; _1500ep: also num_epochs 1500
      local om = settings_of("nnUNetTrainer_onlyMirror01")
      assert.are.same({ 0 }, trainer.mirror_axes(om, 2))
      assert.are.same({ 0, 1 }, trainer.mirror_axes(om, 3))
      local om15 = settings_of("nnUNetTrainer_onlyMirror01_1500ep")
      assert.are.equal(1500, om15.num_epochs)
      assert.are.same({ 0, 1 }, trainer.mirror_axes(om15, 3))
      -- nnUNetTrainerNoDA: validation transforms, initial patch = patch, no inference mirroring
      local nda = settings_of("nnUNetTrainerNoDA")
      assert.is_false(nda.augmentation.enabled)
      assert.are.same({}, trainer.mirror_axes(nda, 3))
      -- nnUNetTrainer_noDummy2DDA: never dummy 2D: a 3d patch 8x64x64 would be dummy 2D by default
      local nd = settings_of("nnUNetTrainer_noDummy2DDA")
      assert.is_false(lunet.augment.configure({ 8, 64, 64 }, nd.augmentation).dummy2d)
      assert.is_true(lunet.augment.configure({ 8, 64, 64 }, d.augmentation).dummy2d)
      assert.are.equal(30 / 180 * math.pi, lunet.augment.configure({ 8, 64, 64 }, nd.augmentation).rotation)

      -- network_architecture/nnUNetTrainerNoDeepSupervision.py: enable_deep_supervision = False
      assert.is_false(settings_of("nnUNetTrainerNoDeepSupervision").enable_deep_supervision)
      -- loss/: CELoss = RobustCrossEntropyLoss only; DiceLoss = MemoryEfficientSoftDiceLoss (smooth 1e-5) only;
      -- DiceCELoss_noSmooth = DC_and_CE_loss with smooth 0, weights 1 and 1
      local ce = settings_of("nnUNetTrainerCELoss")
      assert.are.same({ 1, 0 }, { ce.loss.weight_ce, ce.loss.weight_dice })
      local ce5 = settings_of("nnUNetTrainerCELoss_5epochs")
      assert.are.same({ 1, 0, 5 }, { ce5.loss.weight_ce, ce5.loss.weight_dice, ce5.num_epochs })
      local dl = settings_of("nnUNetTrainerDiceLoss")
      assert.are.same({ 0, 1, 1e-5, false }, { dl.loss.weight_ce, dl.loss.weight_dice, dl.loss.dice_smooth, dl.loss.do_bg })
      local ns = settings_of("nnUNetTrainerDiceCELoss_noSmooth")
      assert.are.same({ 1, 1, 0, false }, { ns.loss.weight_ce, ns.loss.weight_dice, ns.loss.dice_smooth, ns.loss.do_bg })
      -- sampling/nnUNetTrainer_probabilisticOversampling.py: probabilistic; _033 / _010: 0.33 / 0.1
      assert.are.equal("match_fixed", settings_of("nnUNetTrainer_probabilisticOversampling").probabilistic_oversampling)
      local p33, p10 = settings_of("nnUNetTrainer_probabilisticOversampling_033"),
        settings_of("nnUNetTrainer_probabilisticOversampling_010")
      assert.are.same({ true, 0.33, true, 0.1 }, { p33.probabilistic_oversampling, p33.oversample_foreground_percent,
        p10.probabilistic_oversampling, p10.oversample_foreground_percent })
      -- every name of `lunet train -h` resolves, names its own trainer, and the list has the families above
      local names = {}
      for _, t in ipairs(trainer.available { shipped_only = true }) do
        local tr, n = settings_of(t.name)
        assert.are.equal(t.name, n)
        assert.is_table(tr.loss)
        names[t.name] = true
      end
      for _, n in ipairs { "nnUNetTrainer", "nnUNetTrainerNoMirroring", "nnUNetTrainer_onlyMirror01",
        "nnUNetTrainerNoDeepSupervision", "nnUNetTrainerCELoss", "nnUNetTrainerDiceLoss",
        "nnUNetTrainerDiceCELoss_noSmooth", "nnUNetTrainerNoDA", "nnUNetTrainer_8000epochs" } do
        assert.is_true(names[n], n)
      end
      assert.truthy(require("lunet.cli.train").usage:find("nnUNetTrainer_onlyMirror01", 1, true))
    end)

    it("learning-rate schedules equal torch's (nnUNetTrainerCosAnneal, nnUNetTrainer_warmup)", function()
      -- torch 2.15: CosineAnnealingLR(SGD(lr=1e-2), T_max=7).step(e), e = 0..6
      local cos = { 0.01, 0.009504844339512096, 0.008117449009293669, 0.006112604669781572, 0.003887395330218428,
        0.0018825509907063327, 0.0004951556604879049 }
      local ca = settings_of("nnUNetTrainerCosAnneal")
      assert.are.equal("cosine", ca.lr_schedule)
      ca.num_epochs = 7
      for e = 0, 6 do assert.is_true(math.abs(trainer.lr(ca, e) - cos[e + 1]) < 1e-15, e) end
      -- nnunetv2 warmup.py: Lin_incr_LRScheduler(1e-2, 3).step(e), e = 0..2, then PolyLRScheduler_offset(1e-2, 7, 3)
      local warm = { 0.0033333333333333335, 0.006666666666666667, 0.01, 0.01, 0.007718895067235705,
        0.005358867312681466, 0.0028717458874925874 }
      local w = settings_of("nnUNetTrainer_warmup")
      assert.are.same({ "warmup_poly", 50, 1000 }, { w.lr_schedule, w.warmup_epochs, w.num_epochs })
      w.num_epochs, w.warmup_epochs = 7, 3
      for e = 0, 6 do assert.is_true(math.abs(trainer.lr(w, e) - warm[e + 1]) < 1e-15, e) end
      local d = settings_of("nnUNetTrainer")
      assert.are.equal("poly", d.lr_schedule)
      assert.are.equal(trainer.poly_lr(d, 10), trainer.lr(d, 10))
    end)

    it("the fixed scheme's share for probabilisticOversampling equals nnU-Net's formula", function()
      for B = 1, 12 do
        local n = 0
        for j = 0, B - 1 do if core.sampler.force_fg(B, 0.33, j) then n = n + 1 end end
        assert.are.equal(nnunet_prob_share(B, 0.33), n / B, "batch size " .. B)
      end
    end)

    it("an unknown name is an error listing the available ones", function()
      local ok, err = pcall(trainer.find_trainer, "nnUNetTrainerDA5")
      assert.is_false(ok)
      assert.truthy(err:find("trainer 'nnUNetTrainerDA5' not found", 1, true), err)
      assert.truthy(err:find("nnUNetTrainerNoMirroring", 1, true), err)
      assert.truthy(err:find("nnUNetTrainer_250epochs", 1, true), err)
      ok, err = pcall(trainer.find_trainer, DIR .. "/nope.lua")
      assert.is_false(ok)
      assert.truthy(err:find("not found", 1, true), err)
      -- the CLI refuses it before anything runs
      local saved = io.stderr
      io.stderr = io.open("/dev/null", "w")
      local _, code = require("lunet.cli.train").parse({ "4", "2d", "0", "-tr", "nnUNetTrainerNope" })
      io.stderr:close()
      io.stderr = saved
      assert.are.equal(2, code)
    end)

    it("finds a user's trainer by name in $LUNET_TRAINERS, then ./, as well as by path", function()
      sh("mkdir -p " .. DIR .. "/mine " .. DIR .. "/cwd")
      writefile(DIR .. "/mine/MyTrainer.lua", "return { num_epochs = 7 }\n")
      writefile(DIR .. "/mine/family.lua", "return { family = 'mine', variants = { MyFamTrainer = { num_epochs = 9 } } }\n")
      writefile(DIR .. "/cwd/CwdTrainer.lua", "return { num_epochs = 11 }\n")
      writefile(DIR .. "/cwd/MyTrainer.lua", "return { num_epochs = 13 }\n")
      local prog = [[local t = require "lunet.trainer"
for _, n in ipairs(arg) do local ov, name, src = t.find_trainer(n); io.write(name, " ", ov.num_epochs, " ", src, "\n") end]]
      writefile(DIR .. "/find.lua", prog)
      local env = ("LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/build/?.so;;' "):format(ROOT, ROOT, ROOT)
      local p = io.popen("cd " .. DIR .. "/cwd && " .. env .. "LUNET_TRAINERS=" .. DIR .. "/mine lua5.4 " .. DIR ..
        "/find.lua MyTrainer MyFamTrainer CwdTrainer nnUNetTrainer_5epochs 2>&1")
      local out = p:read("a")
      p:close()
      assert.truthy(out:find("MyTrainer 7 " .. DIR .. "/mine/MyTrainer.lua", 1, true), out)   -- $LUNET_TRAINERS first
      assert.truthy(out:find("MyFamTrainer 9 " .. DIR .. "/mine/family.lua: MyFamTrainer", 1, true), out)
      assert.truthy(out:find("CwdTrainer 11 ./CwdTrainer.lua", 1, true), out)
      assert.truthy(out:find("nnUNetTrainer_5epochs 5 .-training_length%.lua: nnUNetTrainer_5epochs"), out)
      local ov, name = trainer.find_trainer(DIR .. "/cwd/CwdTrainer.lua")
      assert.are.same({ "CwdTrainer", 11 }, { name, ov.num_epochs })
    end)
  end)

  describe("settings that are read, or refused", function()
    it("keys no code reads are errors naming the file and the key", function()
      for _, case in ipairs {
        { { optimizer = "Adam" }, "optimizer" }, { { nesterov = false }, "nesterov" },
{ { loss = { batch_dice_from_plans = false } }, "loss.batch_dice_from_plans" },
        { { loss = { regions_loss = "BCE" } }, "loss.regions_loss" }, { { loss = { name = "TopK" } }, "loss.name" },
        { { augmentation = { mirror = { axis = "none" } } }, "augmentation.mirror.axis" },
      } do
        local ok, err = pcall(trainer.settings, rules, case[1], "adam_trainer.lua")
        assert.is_false(ok)
        assert.truthy(err:find("adam_trainer.lua: unknown trainer setting '" .. case[2] .. "'", 1, true), err)
      end
      for _, case in ipairs {
        { { probabilistic_oversampling = "yes" }, "probabilistic_oversampling" },
        { { lr_schedule = "step" }, "lr_schedule" }, { { lr_schedule = "warmup_poly", warmup_epochs = 0 }, "warmup_epochs" },
        { { augmentation = { mirror = { axes = { ["2d"] = { 2 } } } } }, "augmentation.mirror.axes.2d" },
        { { augmentation = { mirror = { axes = "some" } } }, "augmentation.mirror.axes" },
        { { augmentation = { enabled = "no" } }, "augmentation.enabled" },
      } do
        local ok, err = pcall(trainer.settings, rules, case[1], "t.lua")
        assert.is_false(ok)
        assert.truthy(err:find("t.lua: trainer setting '" .. case[2] .. "'", 1, true), err)
      end
      -- a planning rule file's trainer block is checked the same way
      local rf = DIR .. "/adam_rules.lua"
      sh("mkdir -p " .. DIR)
      writefile(rf, "return { trainer = { optimizer = 'Adam' } }\n")
      local ok, err = pcall(trainer.rules_of, rf)
      assert.is_false(ok)
      assert.truthy(err:find("rule file " .. rf .. ": unknown trainer setting 'optimizer'", 1, true), err)
    end)

    it("probabilistic oversampling draws each sample's foreground with the given probability", function()
      local S = 16
      local d, s = {}, {}
      for i = 1, S * S do d[i] = (i % 7) / 7; s[i] = 0 end
      s[5 * S + 6] = 1
      local case = { data = core.tensor(d, { shape = { 1, 1, S, S } }),
        seg = core.tensor(s, { shape = { 1, 1, S, S }, dtype = "i16" }),
        class_locations = { core.tensor({ 0, 0, 5, 5 }, { shape = { 1, 4 }, dtype = "i64" }) } }
      local function forced(p, prob)
        local L = lunet.sampler.new { cases = { case }, patch_size = { 8, 8 }, batch_size = 4, seed = 3,
          validation = true, oversample = p, probabilistic = prob }
        local n, pattern = 0, {}
        for k = 1, 50 do
          local b = L:next_batch()
          for j, f in ipairs(b.force_fg) do if f then n = n + 1 end; pattern[#pattern + 1] = f end
        end
        return n / 200, pattern
      end
      assert.are.equal(0, (forced(0, true)))
      assert.are.equal(1, (forced(1, true)))
      local share, pat = forced(0.5, true)
      assert.is_true(share > 0.35 and share < 0.65, tostring(share))
      local fixed, fpat = forced(0.5, false)
      assert.are.equal(0.5, fixed)
      assert.are_not.same(fpat, pat) -- not the fixed last-half pattern
    end)
  end)

  describe("tiny trainings", function()
    setup(function()
      sh("mkdir -p " .. PRE .. " " .. RES)
      disc.write(RAW, DS, { cases = 6, size = 48, seed = 5, centre = { 16, 16 }, radius = { 6, 5 } })
      local env = disc.env_prefix(RAW, PRE, RES, ROOT)
      assert(sh(env .. LUNET .. " plan_and_preprocess -d 951 -c 2d -q > " .. DIR .. "/pp.log 2>&1"),
        "plan_and_preprocess failed: " .. DIR .. "/pp.log")
      local p = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
      p.plans_name = "TinyPlans"
      local kw = p.configurations["2d"].architecture.arch_kwargs
      local f = json.array {}
      for st = 1, kw.n_stages do f[st] = math.min(16, 4 << (st - 1)) end
      kw.features_per_stage = f
      json.write(PRE .. "/" .. DS .. "/TinyPlans.json", p)
    end)
    teardown(function() sh("rm -rf " .. DIR) end)

    local function train(args, log, extra_env)
      local env = disc.env_prefix(RAW, PRE, RES, ROOT) .. (extra_env or "")
      local ok = sh(env .. LUNET .. " train " .. DS .. " 2d 0 -p TinyPlans --epochs 1 --iters 2 --val-iters 1 -q " ..
        args .. " > " .. DIR .. "/" .. log .. " 2>&1")
      assert(ok, readfile(DIR .. "/" .. log))
    end
    local function fold_dir(tr) return ("%s/%s/%s__TinyPlans__2d/fold_0"):format(RES, DS, tr) end

    it("nnUNetTrainerNoMirroring: no mirror axes in training, in the checkpoint, and predict does not mirror", function()
      train("-tr nnUNetTrainerNoMirroring", "nm.log")
      local F = fold_dir("nnUNetTrainerNoMirroring")
      local d = json.read(F .. "/debug.json")
      assert.are.equal("nnUNetTrainerNoMirroring", d.trainer_name)
      assert.are.same({}, d.inference_allowed_mirroring_axes)
      assert.are.equal("none", d.trainer.augmentation.mirror.axes)
      local h = lunet.net.read_header(F .. "/checkpoint_final.pth")
      assert.are.equal("nnUNetTrainerNoMirroring", h.trainer_name)
      assert.are.same({}, h.mirror_axes)
      local predict = require "lunet.predict"
      local models = predict.load_models { model_dir = RES .. "/" .. DS .. "/nnUNetTrainerNoMirroring__TinyPlans__2d",
        folds = { 0 }, configuration = "2d" }
      assert.are.same({}, models[1].mirror_axes)
      local axes = predict.mirror_axes(models, true, {})
      assert.are.same({}, axes)
      assert.are.same({ 0 }, predict._flip_masks(axes, true)) -- the identity only: one forward per window
      -- the default trainer keeps nnU-Net's axes
      assert.are.same({ { 0 }, { 0, 2, 4, 6 } }, { predict._flip_masks({}, false), predict._flip_masks({ 0, 1 }, true) })
    end)

    it("trains a user's family trainer found by name in $LUNET_TRAINERS: no augmentation, no deep supervision, CE only", function()
      sh("mkdir -p " .. DIR .. "/fam")
      writefile(DIR .. "/fam/plain.lua", [[return { family = "plain", variants = {
  PlainTrainer = { augmentation = { enabled = false, mirror = { axes = "none" } }, enable_deep_supervision = false,
                   loss = { weight_dice = 0 } } } }
]])
      train("-tr PlainTrainer", "plain.log", "LUNET_TRAINERS=" .. DIR .. "/fam ")
      local F = fold_dir("PlainTrainer")
      local d = json.read(F .. "/debug.json")
      assert.are.equal("PlainTrainer", d.trainer_name)
      assert.are.equal(DIR .. "/fam/plain.lua: PlainTrainer", d.trainer_source)
      assert.is_false(d.trainer.augmentation.enabled)
      assert.are.same({ 1, d.patch_size[1], d.patch_size[2] }, d.initial_patch_size) -- nnUNetTrainerNoDA: patch itself
      assert.are.same({}, d.inference_allowed_mirroring_axes)
      local h = lunet.net.read_header(F .. "/checkpoint_final.pth")
      assert.are.equal("PlainTrainer", h.trainer_name)
      local L = h.meta.logging
      assert.are.equal(1, #L.train_losses)
      assert.is_true(L.train_losses[1] > 0) -- cross-entropy only: never negative (the Dice term is)
    end)

    it("a planning rule file's trainer block reaches training, under a trainer variant", function()
      local rf = DIR .. "/my_rules.lua"
      writefile(rf, [[local base = require "lunet.rules.default"
return base.extend { trainer = { initial_lr = 0.02, oversample_foreground_percent = 0.9 },
                     augmentation = { gamma = { p = 0 } } }
]])
      train("--rules " .. rf .. " -tr nnUNetTrainer_probabilisticOversampling", "rules.log")
      local F = fold_dir("nnUNetTrainer_probabilisticOversampling")
      local d = json.read(F .. "/debug.json")
      assert.are.equal(rf, d.rules)
      assert.are.equal(0.02, d.trainer.initial_lr)
      assert.are.equal(0, d.trainer.augmentation.gamma.p)
      assert.are.equal(0.7, d.trainer.augmentation.gamma.gamma[1])
      -- nnUNetTrainer_probabilisticOversampling.__init__ from the rule file's 0.9 and the plans' batch size
      local B = d.batch_size
      assert.are.equal("match_fixed", d.trainer.probabilistic_oversampling)
      assert.are.equal(nnunet_prob_share(B, 0.9), d.trainer.oversample_foreground_percent)
      assert.are.equal(nnunet_prob_share(B, 0.9), d.oversample_foreground_percent)
      local L = lunet.net.read_header(F .. "/checkpoint_final.pth").meta.logging
      assert.are.equal(0.02, L.lrs[1]) -- the first epoch's learning rate is the rule file's
    end)
  end)
end)
