-- Bad values must not pass silently into training: one Inf/NaN voxel, a label outside dataset.json's labels or a
-- non-integer label is refused by plan_and_preprocess / the fingerprint / preprocess / train, naming the case, the
-- file and the value; a NaN loss stops training with the last checkpoint intact; prediction of a NaN image names
-- the file. A small synthetic NIfTI dataset (6 cases of 4x24x24, labels 0/1/2) keeps each case fast.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local image = require "lunet.io.image"
local store = require "lunet.io.store"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"
local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_badvalues"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local CLEAN = "Dataset960_Clean"
local GEOM = { sitk = { spacing = { 1, 1, 1 }, origin = { 0, 0, 0 }, direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } } }
local Z, Y, X = 4, 24, 24

local function sh(cmd) return os.execute(cmd) end

local function readfile(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end

local function env_prefix()
  return ("nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' " ..
    "LUA_CPATH='%s/build/?.so;;' "):format(RAW, PRE, RES, ROOT, ROOT, ROOT)
end

-- case i: a bright box (label 1) with a brighter core (label 2) on a noisy background
local function case_arrays(i)
  local rng = core.rng.new(11, i)
  local img, seg = {}, {}
  local c0 = 6 + i
  for z = 0, Z - 1 do
    for y = 0, Y - 1 do
      for x = 0, X - 1 do
        local inb = y >= c0 and y < c0 + 8 and x >= c0 and x < c0 + 8
        local inc = inb and y >= c0 + 2 and y < c0 + 6 and x >= c0 + 2 and x < c0 + 6
        img[#img + 1] = (inc and 300 or inb and 200 or 100) + rng:int(0, 20) + z
        seg[#seg + 1] = inc and 2 or inb and 1 or 0
      end
    end
  end
  return img, seg
end

local function write_img(path, flat, dtype)
  image.write(path, lunet.tensor(flat, { shape = { 1, Z, Y, X }, dtype = dtype or "f32" }), GEOM)
end

local function make_dataset(name, labels, extra)
  local d = RAW .. "/" .. name
  sh("mkdir -p " .. d .. "/imagesTr " .. d .. "/labelsTr")
  for i = 0, 5 do
    local img, seg = case_arrays(i)
    local id = ("case_%03d"):format(i)
    write_img(d .. "/imagesTr/" .. id .. "_0000.nii.gz", img)
    write_img(d .. "/labelsTr/" .. id .. ".nii.gz", seg, "u8")
  end
  local dj = { channel_names = { ["0"] = "MR" }, labels = labels or { background = 0, box = 1, core = 2 },
    numTraining = 6, file_ending = ".nii.gz" }
  for k, v in pairs(extra or {}) do dj[k] = v end
  json.write(d .. "/dataset.json", dj)
  return d
end

-- case_003 with one voxel of its image, or its label map, replaced
local function poison(name, what, value, dtype)
  local d = make_dataset(name)
  local img, seg = case_arrays(3)
  local k = (1 * Y + 2) * X + 3 + 1 -- (z, y, x) = (1, 2, 3)
  if what == "image" then
    img[k] = value
    write_img(d .. "/imagesTr/case_003_0000.nii.gz", img)
  else
    seg[k] = value
    write_img(d .. "/labelsTr/case_003.nii.gz", seg, dtype or "f32")
  end
  return d
end

local function fingerprint_error(d)
  local ok, err = pcall(lunet.fingerprint.extract, lunet.dataset.open(d), { output = false, progress = false })
  assert.is_false(ok, "the fingerprint accepted " .. d)
  return tostring(err)
end

local function has(s, needle) assert(s:find(needle, 1, true), "expected «" .. needle .. "» in:\n" .. s) end

describe("lunet.core.values", function()
  it("finds the first bad voxel, its value and the count, in any dtype", function()
    local v = core.values
    local f = v.finite(lunet.tensor({ 0, 1, 0 / 0, 2, 1 / 0, -1 / 0 }, { shape = { 1, 1, 2, 3 }, dtype = "f32" }))
    assert.are.equal("nonfinite", f.problem)
    assert.are.equal(2, f.index)
    assert.are.equal(3, f.count)
    assert.is_nil(v.finite(lunet.tensor({ 0, 1, 2 }, { shape = { 1, 1, 1, 3 }, dtype = "f64" })))
    local l = v.labels(lunet.tensor({ 0, 1, 7, 2, 7, 300 }, { shape = { 1, 1, 2, 3 }, dtype = "i16" }), { 0, 1, 2 })
    assert.are.same({ "not_allowed", 2, 7, 3 }, { l.problem, l.index, l.value, l.count })
    -- a non-integer label is reported first even when an out-of-list label comes earlier
    l = v.labels(lunet.tensor({ 7, 0.5, 1 }, { shape = { 1, 1, 1, 3 }, dtype = "f32" }), { 0, 1, 2 })
    assert.are.same({ "noninteger", 1, 0.5, 1 }, { l.problem, l.index, l.value, l.count })
    assert.is_nil(v.labels(lunet.tensor({ 0, 255, 9 }, { shape = { 1, 1, 1, 3 }, dtype = "u8" }))) -- any integer
    assert.is_nil(v.labels(lunet.tensor({ 0, 3, 1 }, { shape = { 1, 1, 1, 3 }, dtype = "u8" }), { 0, 1, 2, 3 }))
  end)
end)

describe("bad values", function()
  setup(function()
    sh("mkdir -p " .. PRE .. " " .. RES)
    paths.set_roots { raw = RAW, preprocessed = PRE, results = RES }
    make_dataset(CLEAN)
  end)
  teardown(function() sh("rm -rf " .. DIR) end)

  describe("plan_and_preprocess / fingerprint / preprocess", function()
    it("refuse one Inf voxel, naming the case, the file, the value and the voxel (CLI, exit status non-zero)", function()
      local d = poison("Dataset961_Inf", "image", 1 / 0)
      local log = DIR .. "/inf.log"
      local ok = sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 961 -c 2d -q > " .. log .. " 2>&1")
      local out = readfile(log)
      assert.is_falsy(ok, out)
      has(out, "case_003: " .. d .. "/imagesTr/case_003_0000.nii.gz holds a non-finite voxel (inf) at (z, y, x) = " ..
        "(1, 2, 3) (1 non-finite voxel in this file)")
      -- nothing poisoned was written for training
      assert.is_false(paths.isfile(PRE .. "/Dataset961_Inf/dataset_fingerprint.json"))
      assert.is_false(paths.isdir(PRE .. "/Dataset961_Inf/nnUNetPlans_2d"))
    end)

    it("refuse a NaN voxel (fingerprint) and -Inf (preprocess run on its own)", function()
      local d = poison("Dataset962_NaN", "image", 0 / 0)
      has(fingerprint_error(d), "case_003: " .. d .. "/imagesTr/case_003_0000.nii.gz holds a non-finite voxel (nan)")
      -- preprocess alone, with plans from the clean dataset (as after an earlier plan_and_preprocess)
      assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 960 -c 2d -q > " .. DIR .. "/clean.log 2>&1"),
        readfile(DIR .. "/clean.log"))
      local d2 = poison("Dataset963_NegInf", "image", -1 / 0)
      local plans = lunet.planner.read(PRE .. "/" .. CLEAN .. "/nnUNetPlans.json")
      local ok, err = pcall(lunet.preprocess.run, lunet.dataset.open(d2), plans, "2d",
        { out_root = DIR .. "/pp963", progress = false })
      assert.is_false(ok)
      has(tostring(err), "preprocess 2d: case case_003: " .. d2 .. "/imagesTr/case_003_0000.nii.gz holds a " ..
        "non-finite voxel (-inf) at (z, y, x) = (1, 2, 3)")
      assert.is_false(paths.isfile(DIR .. "/pp963/nnUNetPlans_2d/lunet/case_003.lcs"))
    end)

    for _, c in ipairs({ { 7, "u8" }, { -3, "i16" }, { 300, "i16" } }) do
      it(("refuse label %d (not in dataset.json's labels) at the fingerprint and at preprocess"):format(c[1]), function()
        local name = ("Dataset96%d_Label%d"):format(4 + (_ - 1), c[1] < 0 and 0 or c[1])
        local d = poison(name, "label", c[1], c[2])
        local msg = ("case_003: %s/labelsTr/case_003.nii.gz holds label %d, not in dataset.json's labels {0, 1, 2}, " ..
          "at (z, y, x) = (1, 2, 3) (1 voxel in this file outside that list)"):format(d, c[1])
        has(fingerprint_error(d), msg)
        local plans = lunet.planner.read(PRE .. "/" .. CLEAN .. "/nnUNetPlans.json")
        local ok, err = pcall(lunet.preprocess.run, lunet.dataset.open(d), plans, "2d",
          { out_root = DIR .. "/pp" .. name, progress = false })
        assert.is_false(ok)
        has(tostring(err), (msg:gsub("^case_003: ", "")))
      end)
    end

    it("refuse a non-integer label (0.5 in a float label file)", function()
      local d = poison("Dataset967_Frac", "label", 0.5, "f32")
      has(fingerprint_error(d), "case_003: " .. d .. "/labelsTr/case_003.nii.gz holds a non-integer label 0.5 at " ..
        "(z, y, x) = (1, 2, 3)")
      local plans = lunet.planner.read(PRE .. "/" .. CLEAN .. "/nnUNetPlans.json")
      local ok, err = pcall(lunet.preprocess.run, lunet.dataset.open(d), plans, "2d",
        { out_root = DIR .. "/pp967", progress = false })
      assert.is_false(ok)
      has(tostring(err), "holds a non-integer label 0.5")
    end)

    it("accept the ignore label and region-based labels", function()
      local d = make_dataset("Dataset968_Ignore", { background = 0, box = 1, core = 2, ignore = 3 })
      local _, seg = case_arrays(3)
      seg[1] = 3
      write_img(d .. "/labelsTr/case_003.nii.gz", seg, "u8")
      local fp = lunet.fingerprint.extract(lunet.dataset.open(d), { output = false, progress = false })
      assert.are.equal(6, #fp.cases)
      local r = make_dataset("Dataset969_Regions", json.object({ background = 0, whole = { 1, 2 }, core = 2 },
        { "background", "whole", "core" }), { regions_class_order = { 1, 2 } })
      fp = lunet.fingerprint.extract(lunet.dataset.open(r), { output = false, progress = false })
      assert.are.equal(6, #fp.cases)
    end)
  end)

  describe("train", function()
    local TINY
    setup(function()
      if not paths.isfile(PRE .. "/" .. CLEAN .. "/nnUNetPlans.json") then
        assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 960 -c 2d -q > " .. DIR .. "/clean.log 2>&1"),
          readfile(DIR .. "/clean.log"))
      end
      local p = json.read(PRE .. "/" .. CLEAN .. "/nnUNetPlans.json")
      p.plans_name = "TinyPlans"
      local kw = p.configurations["2d"].architecture.arch_kwargs
      local f = json.array {}
      for s = 1, kw.n_stages do f[s] = math.min(8, 4 << (s - 1)) end
      kw.features_per_stage = f
      TINY = PRE .. "/" .. CLEAN .. "/TinyPlans.json"
      json.write(TINY, p)
    end)

    local function train(o)
      local base = { dataset = CLEAN, configuration = "2d", fold = 0, plans = "TinyPlans", epochs = 2,
        iterations = 2, val_iterations = 1, quiet = true, progress = false, install_signals = false, seed = 1 }
      for k, v in pairs(o or {}) do base[k] = v end
      return pcall(lunet.trainer.train, base)
    end

    -- rewrite every preprocessed case (so whichever case a batch samples is bad), keeping the originals
    local function with_poisoned_stores(fn_data, fn_seg, body)
      local dir = PRE .. "/" .. CLEAN .. "/nnUNetPlans_2d/lunet"
      sh("cp -r " .. dir .. " " .. dir .. ".orig")
      for i = 0, 5 do
        local p = ("%s/case_%03d.lcs"):format(dir, i)
        local c = store.open(p)
        local data, seg = c:read_patch({ 0, 0, 0 }, c.shape)
        c:close()
        if fn_data then data = lunet.tensor(fn_data(data:flat()), { shape = data.shape, dtype = "f32" }) end
        if fn_seg then seg = lunet.tensor(fn_seg(seg:flat()), { shape = seg.shape, dtype = seg.dtype }) end
        store.write(p, data, seg)
      end
      local ok, err = pcall(body)
      sh("rm -rf " .. dir .. " && mv " .. dir .. ".orig " .. dir)
      assert(ok, err)
    end

    it("refuses preprocessed data holding Inf, naming the case and its store", function()
      with_poisoned_stores(function(v) for k = 1, #v do v[k] = 1 / 0 end return v end, nil, function()
        local ok, err = train()
        assert.is_false(ok)
        assert(tostring(err):find("^case_00%d: " .. PRE:gsub("%p", "%%%0") .. "/" .. CLEAN ..
          "/nnUNetPlans_2d/lunet/case_00%d%.lcs %(preprocessed%) holds a non%-finite voxel %(inf%)"), err)
      end)
    end)

    it("refuses preprocessed labels outside dataset.json's labels", function()
      with_poisoned_stores(nil, function(v) for k = 1, #v do if v[k] == 1 then v[k] = 7 end end return v end,
        function()
          local ok, err = train()
          assert.is_false(ok)
          assert(tostring(err):find("case_00%d%.lcs %(preprocessed%) holds label 7, not in dataset%.json's labels " ..
            "{0, 1, 2}"), err)
        end)
    end)

    it("stops on a NaN loss with the message and the last checkpoint intact", function()
      -- epoch 0 trains normally (checkpoint_best.pth is written at its end); the first step of epoch 1 gets a
      -- NaN input tensor, so the real network computes a NaN loss
      local steps = 0
      local factory = function(...)
        local net = lunet.net.new(...)
        local step = net.train_step
        net.train_step = function(self, b)
          steps = steps + 1
          if steps == 3 then
            local n = 1
            for _, s in ipairs(b.data.shape) do n = n * s end
            local nan = {}
            for k = 1, n do nan[k] = 0 / 0 end
            b.data = lunet.tensor(nan, { shape = b.data.shape, dtype = "f32" })
          end
          return step(self, b)
        end
        return net
      end
      sh("rm -rf " .. RES .. "/" .. CLEAN) -- only this run's checkpoints
      local ok, err = train({ net = factory, prefetch = false })
      assert.is_false(ok)
      has(tostring(err), "epoch 1 iteration 0: the loss is nan; training stopped without saving")
      local F = RES .. "/" .. CLEAN .. "/nnUNetTrainer__TinyPlans__2d/fold_0"
      assert.is_false(paths.isfile(F .. "/checkpoint_final.pth"))
      local meta = lunet.net.read_header(F .. "/checkpoint_best.pth").meta
      assert.are.equal(1, meta.current_epoch) -- written at the end of epoch 0, not after the NaN step
      for _, l in ipairs(meta.logging.train_losses) do assert.is_true(l == l and math.abs(l) < math.huge) end
      local logs = ""
      for _, f in ipairs(paths.listdir(F)) do if f:match("^training_log") then logs = logs .. readfile(F .. "/" .. f) end end
      has(logs, "ERROR: epoch 1 iteration 0: the loss is nan")
      -- and the checkpoint's weights are finite: it still predicts
      local net = lunet.net.new(lunet.planner.read(TINY), "2d", 1, 3, {})
      net:load(F .. "/checkpoint_best.pth")
      local out = net:forward(lunet.tensor((function()
        local t = {}
        for k = 1, 2 * 24 * 24 do t[k] = (k % 7) / 7 end
        return t
      end)(), { shape = { 2, 1, 24, 24 }, dtype = "f32" }))
      assert.is_nil(core.values.finite(out[1]))
    end)
  end)

  it("prediction of an image holding NaN names the file (before any network runs)", function()
    local d = poison("Dataset971_PredNaN", "image", 0 / 0)
    local plans = PRE .. "/" .. CLEAN .. "/nnUNetPlans.json"
    if not paths.isfile(plans) then
      assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 960 -c 2d -q > " .. DIR .. "/clean.log 2>&1"))
    end
    local ran = false
    local model = { forward = function() ran = true; error("the network must not run") end }
    local f = d .. "/imagesTr/case_003_0000.nii.gz"
    local ok, err = pcall(lunet.predict.image, model, f, nil,
      { plans = plans, configuration = "2d", dataset_json = d .. "/dataset.json" })
    assert.is_false(ok)
    assert.is_false(ran)
    has(tostring(err), "predict: " .. f .. " holds a non-finite voxel (nan) at (z, y, x) = (1, 2, 3)")
    has(tostring(err), "a prediction needs finite input voxels")
    assert.is_nil(tostring(err):find("float32", 1, true))
  end)
end)
