-- Region-based training: label -> region masks equal batchgeneratorsv2's
-- ConvertSegmentationToRegionsTransform, region pseudo-Dice counts equal nnUNetTrainer.validation_step's,
-- the sampler's region targets, the overlapped (prefetching) training step bit-identical to the plain one,
-- and a tiny end-to-end region training (nested discs: regions (1, 2) and (2)) exported with regions_class_order.
-- Fixtures: scripts/fixtures/make_region_fixtures.py (nnunetv2 + batchgeneratorsv2 as the oracle).
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"

local F = "spec/fixtures/regions/"
local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"

local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- nested discs on noise: outer disc label 1, inner disc label 2 (regions (1, 2) = outer, (2) = inner)
local function nested(rng, H, W)
  local img, seg = {}, {}
  local cy, cx = rng:int(H // 3, 2 * H // 3), rng:int(W // 3, 2 * W // 3)
  local r1 = math.min(H, W) // 4 + rng:int(0, 3)
  local r2 = r1 // 2
  for y = 0, H - 1 do
    for x = 0, W - 1 do
      local d2 = (y - cy) ^ 2 + (x - cx) ^ 2
      local l = d2 <= r2 * r2 and 2 or (d2 <= r1 * r1 and 1 or 0)
      seg[#seg + 1] = l
      img[#img + 1] = ({ 60, 140, 220 })[l + 1] + rng:int(0, 50)
    end
  end
  return img, seg
end

describe("regions", function()
  local cases = json.read(F .. "cases.json")
  local seg = lunet.io.npy.read(F .. "seg.npy")

  describe("conversion", function()
    for _, name in ipairs({ "brats", "discs" }) do
      it("equals ConvertSegmentationToRegionsTransform: " .. name, function()
        local c = cases.convert[name]
        local ign = c.ignore_label ~= json.null and c.ignore_label or nil
        local want = lunet.io.npy.read(F .. "convert_" .. name .. ".npy")
        local got = core.regions.convert(seg, c.regions, { ignore_label = ign, dtype = "u8" })
        assert.are.same(want.shape, got.shape)
        assert.are.equal(want:bytes(), got:bytes())
        -- every output dtype holds the same 0/1 values
        for _, dt in ipairs({ "i16", "i32", "f32" }) do
          local g = core.regions.convert(seg, c.regions, { ignore_label = ign, dtype = dt })
          assert.are.equal(dt, g.dtype)
          assert.are.same(want:flat(), g:flat())
        end
      end)
    end

    it("reads another seg channel and rejects bad regions with a message", function()
      local s = lunet.tensor({ 0, 1, 2, 3,  2, 2, 0, 1 }, { shape = { 1, 2, 1, 4 }, dtype = "i16" })
      assert.are.same({ 1, 1, 0, 0 }, core.regions.convert(s, { 2 }, { channel = 2 }):flat())
      assert.are.same({ 0, 1, 1, 0 }, core.regions.convert(s, { { 1, 2 } }):flat())
      assert.has_error(function() core.regions.convert(s, {}) end)
      assert.has_error(function() core.regions.convert(s, { {} }) end, "regions.convert: region 1 is empty")
      assert.has_error(function() core.regions.convert(s, { { 1, "x" } }) end,
        "regions.convert: region 1 entry 2 is not an integer")
      local ok, err = pcall(core.regions.convert, s, { 1 }, { channel = 3 })
      assert.is_false(ok)
      assert.truthy(tostring(err):find("seg channel 2 out of range", 1, true), err)
      ok, err = pcall(core.regions.convert, lunet.tensor({ 1.5 }, { shape = { 1, 1, 1 }, dtype = "f64" }), { 1 })
      assert.truthy(tostring(err):find("dtype f64", 1, true) or tostring(err):find("dtype float64", 1, true), err)
    end)
  end)

  describe("pseudo Dice counts", function()
    local logits = lunet.io.npy.read(F .. "val_logits.npy")
    local lab = lunet.io.npy.read(F .. "val_seg.npy")
    local R = { { 1, 2, 3 }, { 2, 3 }, 3 }
    for _, mode in ipairs({ "plain", "ignore" }) do
      it("equal nnUNetTrainer.validation_step (sigmoid > 0.5, " .. mode .. ")", function()
        local ign = mode == "ignore" and 4 or nil
        local target = core.regions.convert(lab, R, { ignore_label = ign, dtype = "i32" })
        local cm = require("lunet.trainer")._region_confusion(logits, target, ign)
        local want = cases.confusion[mode]
        for r = 1, 3 do
          assert.are.same({ want.TP[r], want.FP[r], want.FN[r] }, { cm[r].TP, cm[r].FP, cm[r].FN }, "region " .. r)
        end
      end)
    end
    it("rejects a target without the ignore channel", function()
      local target = core.regions.convert(lab, R, { dtype = "i32" })
      local ok, err = pcall(core.regions.confusion, logits, target, true)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("regions plus the ignore mask", 1, true), err)
    end)
  end)

  describe("sampler and overlapped steps", function()
    local H, W = 48, 40
    local rng = core.rng.new(3, 0)
    local mem = {}
    for i = 1, 4 do
      local img, s = nested(rng, H, W)
      local locs = { {}, {} }
      for k, v in ipairs(s) do
        local y, x = (k - 1) // W, (k - 1) % W
        if v >= 1 then for _, c in ipairs({ 0, 0, y, x }) do locs[1][#locs[1] + 1] = c end end
        if v == 2 then for _, c in ipairs({ 0, 0, y, x }) do locs[2][#locs[2] + 1] = c end end
      end
      for k = 1, #img do img[k] = (img[k] - 130) / 60 end
      mem[i] = {
        data = lunet.tensor(img, { shape = { 1, 1, H, W }, dtype = "f32" }),
        seg = lunet.tensor(s, { shape = { 1, 1, H, W }, dtype = "i16" }),
        class_locations = { lunet.tensor(locs[1], { shape = { #locs[1] // 4, 4 }, dtype = "i32" }),
                            lunet.tensor(locs[2], { shape = { #locs[2] // 4, 4 }, dtype = "i32" }) },
      }
    end
    local function loader(seed)
      return lunet.sampler.new { cases = mem, patch_size = { 32, 32 }, batch_size = 3, seed = seed,
        regions = { { 1, 2 }, 2 }, ds_scales = { { 1, 1, 1 }, { 1, 0.5, 0.5 } } }
    end

    it("batches carry region masks of the augmented seg, converted before DS downsampling", function()
      local b = loader(4):next_batch()
      assert.are.same({ 3, 2, 1, 32, 32 }, b.regions.shape)
      assert.are.equal(core.regions.convert(b.seg, { { 1, 2 }, 2 }, { dtype = "i16" }):bytes(), b.regions:bytes())
      assert.are.equal(b.regions, b.target[1])
      assert.are.same({ 3, 2, 1, 16, 16 }, b.target[2].shape)
      assert.are.equal(core.augment.downsample_seg(b.regions, { 1, 0.5, 0.5 }):bytes(), b.target[2]:bytes())
      local ones = 0
      for _, v in ipairs(b.regions:flat()) do ones = ones + v end
      assert.is_true(ones > 0)
    end)

    it("prefetch: same seed gives identical batches and a bit-identical training run", function()
      local plans = lunet.planner.read("spec/fixtures/plans/ct_iso/nnUNetPlans.json")
      local kw = plans.configurations["2d"].architecture.arch_kwargs
      for s = 1, kw.n_stages do kw.features_per_stage[s] = math.min(8, 2 << (s - 1)) end
      plans.configurations["2d"].patch_size = { 32, 32 }
      plans.configurations["2d"].batch_size = 3
      local trainer = require "lunet.trainer"
      local function to_net(b) return trainer._to_net(b, 2) end
      local function run(prefetch)
        local net = lunet.net(plans, "2d", 1, 2, { seed = 7 })
        local ld = loader(11)
        local losses, batches = {}, {}
        local pending
        for k = 1, 4 do
          local x, y
          if pending then x, y = pending[1], pending[2] else x, y = to_net(ld:next_batch()) end
          batches[k] = x:bytes() .. y:bytes()
          local batch = { data = x, target = y, lr = 0.01, regions = true }
          if prefetch then
            local job = core.async.train_step(net.core, x, y, net:train_opts(batch))
            pending = { to_net(ld:next_batch()) } -- host work while the step runs on the worker
            losses[k] = job:wait()
            assert.is_true(job:done())
          else
            losses[k] = net:train_step(batch)
          end
        end
        return losses, batches, net.core:flat(0)
      end
      local la, ba, pa = run(false)
      local lb, bb, pb = run(true)
      for k = 1, 4 do assert.are.equal(ba[k], bb[k], "batch " .. k) end
      assert.are.same(la, lb)
      assert.is_true(pa == pb, "weights differ after the overlapped run")
      for k = 1, 4 do assert.is_true(la[k] == la[k] and la[k] < 2) end
      -- errors of the worker come back from wait() with the core's message
      local net = lunet.net(plans, "2d", 1, 2, { seed = 7 })
      local x, y = to_net(loader(1):next_batch())
      local bad = lunet.tensor({ 0 }, { shape = { 1, 1, 1, 1 }, dtype = "i32" })
      local job = core.async.train_step(net.core, x, bad, net:train_opts({ regions = true }))
      local ok, err = pcall(job.wait, job)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("does not match input", 1, true), err)
      assert.are.equal("number", type((core.async.train_step(net.core, x, y, net:train_opts({ regions = true })):wait())))
    end)
  end)

  describe("end-to-end region training", function()
    local tmp = os.tmpname()
    os.remove(tmp)
    local DIR = tmp .. "_regions"
    local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
    local DS = "Dataset952_NestedDiscs"
    local env = ("nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' " ..
      "LUA_CPATH='%s/build/?.so;;' "):format(RAW, PRE, RES, ROOT, ROOT, ROOT)
    local FD
    setup(function()
      os.execute("mkdir -p " .. RAW .. "/" .. DS .. "/imagesTr " .. RAW .. "/" .. DS .. "/labelsTr " .. PRE .. " " .. RES)
      local rng = core.rng.new(5, 0)
      for i = 0, 9 do
        local img, s = nested(rng, 64, 64)
        local id = string.format("nd_%03d", i)
        lunet.io.image.write(RAW .. "/" .. DS .. "/imagesTr/" .. id .. "_0000.png", lunet.tensor(img, { shape = { 1, 1, 64, 64 }, dtype = "u8" }))
        lunet.io.image.write(RAW .. "/" .. DS .. "/labelsTr/" .. id .. ".png", lunet.tensor(s, { shape = { 1, 1, 64, 64 }, dtype = "u8" }))
      end
      -- written by hand: the labels' order defines the regions' order
      local f = assert(io.open(RAW .. "/" .. DS .. "/dataset.json", "w"))
      f:write('{"channel_names": {"0": "grey"}, "labels": {"background": 0, "disc": [1, 2], "core": 2},\n' ..
        ' "regions_class_order": [1, 2], "numTraining": 10, "file_ending": ".png"}\n')
      f:close()
      assert(os.execute(env .. LUNET .. " plan_and_preprocess -d 952 -c 2d -q > " .. DIR .. "/pp.log 2>&1"), readfile(DIR .. "/pp.log"))
      local p = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
      p.plans_name = "TinyPlans"
      local kw = p.configurations["2d"].architecture.arch_kwargs
      local fs = json.array {}
      for s = 1, kw.n_stages do fs[s] = math.min(16, 4 << (s - 1)) end
      kw.features_per_stage = fs
      json.write(PRE .. "/" .. DS .. "/TinyPlans.json", p)
      assert(os.execute(env .. LUNET .. " train " .. DS .. " 2d 0 -p TinyPlans --epochs 8 --iters 20 --val-iters 3 --seed 2 --npz -q > " ..
        DIR .. "/train.log 2>&1"), readfile(DIR .. "/train.log"))
      FD = RES .. "/" .. DS .. "/nnUNetTrainer__TinyPlans__2d/fold_0"
    end)
    teardown(function() os.execute("rm -rf " .. DIR) end)

    it("pseudo Dice per region rises", function()
      local L = lunet.net.read_header(FD .. "/checkpoint_final.pth").meta.logging
      assert.are.equal(8, #L.mean_fg_dice)
      assert.are.equal(2, #L.dice_per_class_or_region[1]) -- two regions, sigmoid outputs
      assert.is_true(L.mean_fg_dice[8] > L.mean_fg_dice[1] + 0.2, json.encode(L.mean_fg_dice))
      assert.is_true(L.dice_per_class_or_region[8][1] > 0.8 and L.dice_per_class_or_region[8][2] > L.dice_per_class_or_region[1][2] + 0.2, json.encode(L.dice_per_class_or_region))
      assert.is_true(L.train_losses[8] < L.train_losses[1])
      local h = lunet.net.read_header(FD .. "/checkpoint_final.pth")
      assert.are.equal(2, json.read(FD .. "/debug.json").num_output_channels)
      assert.truthy(h)
    end)

    it("the overlapped trainer (default) gives the same run as the sequential one (prefetch = false)", function()
      local code = ("require('lunet.trainer').train{dataset='%s', plans='TinyPlans', configuration='2d', fold=0, " ..
        "epochs=8, iterations=20, val_iterations=3, seed=2, progress=false, quiet=true, prefetch=false}"):format(DS)
      local env2 = env:gsub("nnUNet_results=%S+", "nnUNet_results=" .. DIR .. "/res_seq")
      assert(os.execute(env2 .. "lua5.4 -e \"" .. code .. "\" > " .. DIR .. "/seq.log 2>&1"), readfile(DIR .. "/seq.log"))
      local A = lunet.net.read_header(FD .. "/checkpoint_final.pth").meta.logging
      local B = lunet.net.read_header(DIR .. "/res_seq/" .. DS .. "/nnUNetTrainer__TinyPlans__2d/fold_0/checkpoint_final.pth").meta.logging
      assert.are.same(A.train_losses, B.train_losses)
      assert.are.same(A.val_losses, B.val_losses)
      assert.are.same(A.dice_per_class_or_region, B.dice_per_class_or_region)
    end)

    it("trains regions with an ignore label (ignore mask as the last target channel)", function()
      local ds = "Dataset953_NestedIgn"
      os.execute("mkdir -p " .. RAW .. "/" .. ds .. "/labelsTr && cp -r " .. RAW .. "/" .. DS .. "/imagesTr " .. RAW .. "/" .. ds .. "/")
      for i = 0, 9 do
        local id = string.format("nd_%03d", i)
        local s = lunet.io.image.read(RAW .. "/" .. DS .. "/labelsTr/" .. id .. ".png").data:flat()
        for k = 1, #s do if (k - 1) % 64 < 10 then s[k] = 3 end end -- the left 10 columns are not annotated
        lunet.io.image.write(RAW .. "/" .. ds .. "/labelsTr/" .. id .. ".png", lunet.tensor(s, { shape = { 1, 1, 64, 64 }, dtype = "u8" }))
      end
      local f = assert(io.open(RAW .. "/" .. ds .. "/dataset.json", "w"))
      f:write('{"channel_names": {"0": "grey"}, "labels": {"background": 0, "disc": [1, 2], "core": 2, "ignore": 3},\n' ..
        ' "regions_class_order": [1, 2], "numTraining": 10, "file_ending": ".png"}\n')
      f:close()
      assert(os.execute(env .. LUNET .. " plan_and_preprocess -d 953 -c 2d -q > " .. DIR .. "/pp3.log 2>&1"), readfile(DIR .. "/pp3.log"))
      local p = json.read(PRE .. "/" .. ds .. "/nnUNetPlans.json")
      p.plans_name = "TinyPlans"
      p.configurations["2d"].architecture.arch_kwargs.features_per_stage =
        json.read(PRE .. "/" .. DS .. "/TinyPlans.json").configurations["2d"].architecture.arch_kwargs.features_per_stage
      json.write(PRE .. "/" .. ds .. "/TinyPlans.json", p)
      assert(os.execute(env .. LUNET .. " train " .. ds .. " 2d 0 -p TinyPlans --epochs 4 --iters 20 --val-iters 3 --seed 2 -q > " ..
        DIR .. "/ign.log 2>&1"), readfile(DIR .. "/ign.log"))
      local G = RES .. "/" .. ds .. "/nnUNetTrainer__TinyPlans__2d/fold_0"
      local L = lunet.net.read_header(G .. "/checkpoint_final.pth").meta.logging
      assert.are.equal(2, #L.dice_per_class_or_region[1]) -- the ignore label is neither a region nor an output
      assert.are.equal(2, json.read(G .. "/debug.json").num_output_channels)
      assert.is_true(L.dice_per_class_or_region[4][1] > L.dice_per_class_or_region[1][1] + 0.2, json.encode(L.dice_per_class_or_region))
      assert.is_true(L.train_losses[4] < L.train_losses[1])
      local sm = json.read(G .. "/validation/summary.json")
      assert.truthy(sm.mean["(1, 2)"] and sm.mean["2"], json.encode(sm.mean))
    end)

    it("exports the validation with regions_class_order and evaluates per region", function()
      local s = json.read(FD .. "/validation/summary.json")
      assert.truthy(s.mean["(1, 2)"], json.encode(s.mean))
      assert.truthy(s.mean["2"], json.encode(s.mean))
      assert.is_true(s.mean["(1, 2)"].Dice > 0.5, json.encode(s.mean))
      local n, both = 0, 0
      for _, name in ipairs(paths.listdir(FD .. "/validation")) do
        local id = name:match("^(nd_%d+)%.png$")
        if id then
          n = n + 1
          local seg = lunet.io.image.read(FD .. "/validation/" .. name).data:flat()
          local probs = core.npz.read(FD .. "/validation/" .. id .. ".npz").probabilities
          assert.are.same({ 2, 1, 64, 64 }, probs.shape)
          local p = probs:flat()
          -- regions_class_order {1, 2}: label 1 where region 1 > 0.5, then label 2 where region 2 > 0.5
          local seen = {}
          for k = 1, #seg do
            local want = 0
            if p[k] > 0.5 then want = 1 end
            if p[4096 + k] > 0.5 then want = 2 end
            assert.are.equal(want, seg[k], ("%s voxel %d"):format(id, k))
            seen[seg[k]] = true
          end
          if seen[1] and seen[2] then both = both + 1 end
        end
      end
      assert.is_true(n >= 2, "validation cases: " .. n)
      assert.is_true(both >= 1, "no validation case holds both labels")
    end)
  end)
end)
