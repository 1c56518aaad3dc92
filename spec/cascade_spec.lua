-- The cascade (issue 29): 3d_lowres's final validation writes predicted_next_stage/, 3d_cascade_fullres trains on
-- those predictions as one-hot input channels with nnU-Net's cascade augmentations, prediction chains the stages,
-- find-best weighs the cascade against the other configurations. The morphology and the next-stage export are
-- compared with batchgeneratorsv2 / nnunetv2 outputs (spec/fixtures/cascade/make_fixtures.py).
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local cascade = require "lunet.cascade"
local predict = require "lunet.predict"

local F = "spec/fixtures/cascade/"
local npy = core.npz.read_npy
local ROOT = os.getenv("PWD") or "."

local function count_diff(a, b, off, n)
  local bad = 0
  for i = 1, n do if a[i] ~= b[off + i] then bad = bad + 1 end end
  return bad
end

describe("cascade", function()
  describe("random binary operators", function()
    local radii = npy(F .. "radii.npy"):flat()

    it("equal batchgeneratorsv2's dilation, erosion, closing and opening with skimage's ball", function()
      local m = npy(F .. "mask3d.npy")
      local want = npy(F .. "ops3d.npy"):flat()
      local sp, flat = m.shape, m:flat()
      local v = sp[1] * sp[2] * sp[3]
      local k = 0
      for _, r in ipairs(radii) do
        for op = 1, 4 do
          local got = cascade.binary_op(flat, sp, op, r, 3)
          assert.are.equal(0, count_diff(got, want, k * v, v), ("radius %s %s"):format(r, cascade.operator_names[op]))
          k = k + 1
        end
      end
    end)

    it("equal them with skimage's disk on 2-D patches", function()
      local m = npy(F .. "mask2d.npy")
      local want = npy(F .. "ops2d.npy"):flat()
      local sp, flat = { 1, m.shape[1], m.shape[2] }, m:flat()
      local v = #flat
      local k = 0
      for _, r in ipairs(radii) do
        for op = 1, 4 do
          assert.are.equal(0, count_diff(cascade.binary_op(flat, sp, op, r, 2), want, k * v, v))
          k = k + 1
        end
      end
    end)

    it("builds skimage's footprints: ball(1) has 7 voxels, ball(1.5) is a 2x2x2 cube off-centre", function()
      local function size(fp)
        local n = 0
        for _, f in ipairs(fp) do n = n + f[4] - f[3] + 1 end
        return n
      end
      assert.are.equal(7, size(cascade.footprint(1.0, 3)))
      assert.are.equal(33, size(cascade.footprint(2.0, 3)))
      -- ball(1.5): 4 points per axis (-1.5 .. 1.5), only the inner 2^3 are within 1.5; 'same' padding anchors the
      -- 4-wide kernel at index 1, so the cube covers offsets 0 and 1 on each axis
      local fp = cascade.footprint(1.5, 3)
      assert.are.equal(8, size(fp))
      local lo, hi = math.huge, -math.huge
      for _, f in ipairs(fp) do
        for a = 1, 2 do lo, hi = math.min(lo, f[a]), math.max(hi, f[a]) end
        lo, hi = math.min(lo, f[3]), math.max(hi, f[4])
      end
      assert.are.same({ 0, 1 }, { lo, hi })
      assert.are.equal(5, size(cascade.footprint(1.0, 2)))
    end)
  end)

  describe("batches", function()
    it("move the previous stage's seg into one-hot data channels, the first seg channel stays the target", function()
      -- 2 samples, 1 image channel, 2x2x2; seg channel 2 holds labels 0, 1, 2 (-1 is gone after RemoveLabel)
      local img = core.tensor({ 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16 },
        { shape = { 2, 1, 2, 2, 2 }, dtype = "f32" })
      local seg = core.tensor({ 0, 1, 1, 2, 2, 0, 0, 1, 2, 2, 1, 0, 0, 0, 1, 1,
                                1, 1, 0, 0, 0, 0, 2, 2, 0, 1, 2, 0, 1, 2, 0, 1 },
        { shape = { 2, 2, 2, 2, 2 }, dtype = "i16" })
      local d, s = cascade.move_to_data(img, seg, { 1, 2 })
      assert.are.same({ 2, 3, 2, 2, 2 }, d.shape)
      assert.are.same({ 2, 1, 2, 2, 2 }, s.shape)
      assert.are.same({ 1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0,
                        9, 10, 11, 12, 13, 14, 15, 16, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0 }, d:flat())
      assert.are.same({ 0, 1, 1, 2, 2, 0, 0, 1, 1, 1, 0, 0, 0, 0, 2, 2 }, s:flat())
    end)

    it("perturb the one-hot channels at nnU-Net's rates and keep them exclusive", function()
      local Z = 12
      local sp = { Z, Z, Z }
      local v = Z * Z * Z
      local root = core.rng.new(11, 0)
      local n_op, n_rm, trials = 0, 0, 300
      local ops_seen = {}
      for t = 1, trials do
        -- two labels: a block of label 1 with an island of label 2, and a small separate blob of label 1
        local c1, c2 = {}, {}
        for z = 0, Z - 1 do
          for y = 0, Z - 1 do
            for x = 0, Z - 1 do
              local i = (z * Z + y) * Z + x + 1
              local in1 = (z >= 2 and z < 9 and y >= 2 and y < 9 and x >= 2 and x < 9) or (z == 10 and y == 10 and x == 10)
              local in2 = z >= 4 and z < 6 and y >= 4 and y < 6 and x >= 4 and x < 6
              c1[i], c2[i] = (in1 and not in2) and 1 or 0, in2 and 1 or 0
            end
          end
        end
        local rec = cascade.augment_sample({ c1, c2 }, sp, root:child(t), 3)
        if #rec.ops > 0 then n_op = n_op + 1 end
        if #rec.removed > 0 then n_rm = n_rm + 1 end
        for _, o in ipairs(rec.ops) do
          ops_seen[o.op] = true
          assert.is_true(o.radius >= 1 and o.radius < 8)
        end
        for _, r in ipairs(rec.removed) do assert.is_true(r.size < 0.15 * v) end
        for i = 1, v do assert.is_true(c1[i] + c2[i] <= 1) end
      end
      -- P(some operator) = 0.4 * (1 - 0.5^2) = 0.3; P(some removal) <= 0.2 * 0.75 = 0.15
      assert.is_true(math.abs(n_op / trials - 0.3) < 0.08, "operator rate " .. n_op / trials)
      assert.is_true(n_rm > 0 and n_rm / trials < 0.2, "removal rate " .. n_rm / trials)
      for _, name in ipairs(cascade.operator_names) do assert.is_true(ops_seen[name], name) end
    end)
  end)

  describe("predicted_next_stage", function()
    for _, n in ipairs({ "iso", "aniso" }) do
      it("equals nnunetv2's resample_and_save (" .. n .. " spacing)", function()
        local lg = npy(F .. "next_" .. n .. "_logits.npy")
        local want = npy(F .. "next_" .. n .. "_seg.npy")
        local sp = npy(F .. "next_" .. n .. "_spacing.npy"):flat()
        local plans = { transpose_forward = { 0, 1, 2 }, transpose_backward = { 0, 1, 2 }, configurations = {
          ["3d_lowres"] = { spacing = sp, patch_size = { 8, 8, 8 }, resampling_fn_probabilities_kwargs = {
            is_seg = false, order = 1, order_z = 0, force_separate_z = json.null } } } }
        local info = lunet.labels.of_dataset_json({ labels = { background = 0, a = 1, b = 2 } })
        local seg = predict.resample_to_seg(lg, want.shape, { spacing = sp }, plans, "3d_lowres", info, { threads = 2 })
        assert.are.equal("u8", seg.dtype)
        assert.are.same(want.shape, seg.shape)
        assert.are.equal(want:bytes(), seg:bytes())
      end)
    end

    -- nnunetv2's default (Blosc2) dataset writes predicted_next_stage/<cfg>/<case>.b2nd: export_prediction's
    -- nnUNetDatasetBlosc2.save_seg with chunks from comp_blosc2_params (spec/fixtures/b2nd/, next_stage_seg)
    it("reads nnunetv2's <case>.b2nd when the folder has no .npz or .npy of the case", function()
      local paths = lunet.util.paths
      local dir = os.tmpname()
      os.remove(dir)
      paths.mkdirs(dir)
      local f = assert(io.open("spec/fixtures/b2nd/next_stage_seg.b2nd", "rb"))
      local bytes = f:read("a")
      f:close()
      f = assert(io.open(dir .. "/case_000.b2nd", "wb"))
      f:write(bytes)
      f:close()
      cascade.check_folder(dir, { "case_000" }, "3d_cascade_fullres", "3d_lowres") -- no error
      local file = cascade.seg_file(dir, "case_000")
      assert.are.equal(dir .. "/case_000.b2nd", file)
      local seg = cascade.read_seg(file)
      local want = npy("spec/fixtures/b2nd/next_stage_seg.npy")
      assert.are.equal("i16", seg.dtype)
      assert.are.same({ 1, 20, 24, 18 }, seg.shape)
      assert.are.equal(want:astype("i16"):bytes(), seg:bytes())
      -- a Lunet-written .npz of the case is preferred
      cascade.write_seg(dir .. "/case_000.npz", core.zeros({ 20, 24, 18 }, "u8"))
      assert.are.equal(dir .. "/case_000.npz", cascade.seg_file(dir, "case_000"))
      -- a corrupt .b2nd names the file
      os.remove(dir .. "/case_000.npz")
      f = assert(io.open(dir .. "/case_000.b2nd", "wb"))
      f:write(bytes:sub(1, 300))
      f:close()
      local ok, err = pcall(cascade.read_seg, file)
      assert.is_false(ok)
      assert.matches(file .. ": cannot read the previous stage's segmentation: ", err, 1, true)
      assert.matches("(truncated)", err, 1, true)
      os.remove(dir .. "/case_000.b2nd")
      os.remove(dir)
    end)
  end)

  describe("end to end", function()
    local tmp = os.tmpname()
    os.remove(tmp)
    local DIR = tmp .. "_cascade"
    local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
    local DS = "Dataset960_Balls"
    local env = require("spec.support.disc").env_prefix(RAW, PRE, RES, ROOT)
    local TR = F .. "tiny_trainer.lua"
    local LOW = RES .. "/" .. DS .. "/cascade_tiny__TinyPlans__3d_lowres"
    local CAS = RES .. "/" .. DS .. "/cascade_tiny__TinyPlans__3d_cascade_fullres"
    local NEXT = LOW .. "/predicted_next_stage/3d_cascade_fullres"

    local function lunet_cmd(args)
      local p = assert(io.popen(env .. ROOT .. "/scripts/lunet " .. args .. " 2>&1"))
      local out = p:read("a")
      local ok = p:close()
      return ok, out
    end
    local function must(args)
      local ok, out = lunet_cmd(args)
      assert(ok, "lunet " .. args .. " failed:\n" .. out)
      return out
    end
    local function isfile(p) return lunet.util.paths.isfile(p) end

    -- 5 cases of 32^3: a bright ball (label 1) with a brighter core (label 2)
    setup(function()
      local dir = RAW .. "/" .. DS
      os.execute("mkdir -p " .. dir .. "/imagesTr " .. dir .. "/labelsTr " .. dir .. "/imagesTs " .. PRE .. " " .. RES)
      local rng = core.rng.new(5, 0)
      local S = 32
      for i = 0, 4 do
        local c = { 12 + rng:int(0, 8), 12 + rng:int(0, 8), 12 + rng:int(0, 8) }
        local r = 6 + rng:int(0, 3)
        local img, seg = {}, {}
        for z = 0, S - 1 do
          for y = 0, S - 1 do
            for x = 0, S - 1 do
              local d2 = (z - c[1]) ^ 2 + (y - c[2]) ^ 2 + (x - c[3]) ^ 2
              local l = d2 <= (r / 2) ^ 2 and 2 or (d2 <= r * r and 1 or 0)
              img[#img + 1] = (l == 2 and 200 or l == 1 and 140 or 60) + rng:int(0, 40)
              seg[#seg + 1] = l
            end
          end
        end
        local id = ("ball_%03d"):format(i)
        local it = lunet.tensor(img, { shape = { 1, S, S, S }, dtype = "f32" })
        lunet.io.image.write(dir .. "/imagesTr/" .. id .. "_0000.nii.gz", it)
        if i == 0 then lunet.io.image.write(dir .. "/imagesTs/" .. id .. "_0000.nii.gz", it) end
        lunet.io.image.write(dir .. "/labelsTr/" .. id .. ".nii.gz", lunet.tensor(seg, { shape = { 1, S, S, S }, dtype = "u8" }))
      end
      json.write(dir .. "/dataset.json", { channel_names = { ["0"] = "grey" },
        labels = { background = 0, outer = 1, inner = 2 }, numTraining = 5, file_ending = ".nii.gz" })
      must("plan_and_preprocess -d 960 -c 3d_fullres 3d_lowres -pl " .. F .. "tiny_rules.lua -q")
    end)
    teardown(function() os.execute("rm -rf " .. DIR) end)

    it("plans 3d_lowres -> 3d_cascade_fullres as nnU-Net", function()
      local p = json.read(PRE .. "/" .. DS .. "/TinyPlans.json")
      assert.are.same({ "2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres" }, json.keys(p.configurations))
      assert.are.equal("3d_cascade_fullres", p.configurations["3d_lowres"].next_stage)
      assert.are.same({ inherits_from = "3d_fullres", previous_stage = "3d_lowres" }, p.configurations["3d_cascade_fullres"])
    end)

    it("refuses the cascade before 3d_lowres has predicted, naming the folder", function()
      local ok, out = lunet_cmd("train 960 3d_cascade_fullres 0 -p TinyPlans -tr " .. TR .. " -q")
      assert.is_falsy(ok)
      assert.matches("previous stage's predictions " .. NEXT:gsub("%p", "%%%0") .. " do not exist", out)
    end)

    it("trains 3d_lowres, then the cascade on its predictions, predicts with both stages, find-best weighs them", function()
      for f = 0, 4 do must(("train 960 3d_lowres %d -p TinyPlans -tr %s --npz -q"):format(f, TR)) end
      -- every training case has its next-stage segmentation on the 3d_fullres grid (32^3), uint8 in 'seg'
      for i = 0, 4 do
        local t = core.npz.read(("%s/ball_%03d.npz"):format(NEXT, i))
        assert.are.same({ 32, 32, 32 }, t.seg.shape)
        assert.are.equal("u8", t.seg.dtype)
        for _, v in ipairs(t.seg:flat()) do assert.is_true(v >= 0 and v <= 2) end
      end

      -- a missing case file is named
      os.rename(NEXT .. "/ball_003.npz", NEXT .. "/ball_003.npz.away")
      local ok, out = lunet_cmd("train 960 3d_cascade_fullres 0 -p TinyPlans -tr " .. TR .. " -q")
      assert.is_falsy(ok)
      assert.matches("ball_003.npz", out)
      os.rename(NEXT .. "/ball_003.npz.away", NEXT .. "/ball_003.npz")

      must("train 960 3d_cascade_fullres 0 -p TinyPlans -tr " .. TR .. " --npz -q")
      local dbg = json.read(CAS .. "/fold_0/debug.json")
      assert.are.equal(3, dbg.num_input_channels) -- 1 image channel + one-hot of labels 1 and 2
      assert.is_true(isfile(CAS .. "/fold_0/checkpoint_final.pth"))
      assert.is_true(isfile(CAS .. "/fold_0/validation/summary.json"))
      -- the cascade is no previous stage: it writes no predicted_next_stage
      assert.is_false(lunet.util.paths.isdir(CAS .. "/predicted_next_stage"))

      local ts = RAW .. "/" .. DS .. "/imagesTs"
      must(("predict -i %s -o %s/pred_low -d 960 -c 3d_lowres -p TinyPlans -tr cascade_tiny -f 0 1 2 3 4"):format(ts, DIR))
      must(("predict -i %s -o %s/pred_cas -d 960 -c 3d_cascade_fullres -p TinyPlans -tr cascade_tiny -f 0 " ..
        "--prev-stage-predictions %s/pred_low"):format(ts, DIR, DIR))
      local seg = lunet.io.image.read(DIR .. "/pred_cas/ball_000.nii.gz")
      assert.are.same({ 1, 32, 32, 32 }, seg.data.shape)

      must("find-best 960 -c 3d_lowres 3d_cascade_fullres -f 0 -p TinyPlans -tr cascade_tiny")
      local info = json.read(RES .. "/" .. DS .. "/inference_information.json")
      local keys = {}
      for k in pairs(info.all_results) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "cascade_tiny__TinyPlans__3d_cascade_fullres", "cascade_tiny__TinyPlans__3d_lowres",
        "ensemble___cascade_tiny__TinyPlans__3d_lowres___cascade_tiny__TinyPlans__3d_cascade_fullres___0" }, keys)
      -- the cascade alone wins: its instructions run 3d_lowres first and hand its folder to the cascade
      must("find-best 960 -c 3d_cascade_fullres -f 0 -p TinyPlans -tr cascade_tiny")
      local f = assert(io.open(RES .. "/" .. DS .. "/inference_instructions.txt"))
      local txt = f:read("a")
      f:close()
      assert.matches("lunet predict %-d 960 %-i INPUT_FOLDER %-o OUTPUT_FOLDER_PREV_STAGE %-f  0 %-tr cascade_tiny " ..
        "%-c 3d_lowres %-p TinyPlans\nlunet predict %-d 960 %-i INPUT_FOLDER %-o OUTPUT_FOLDER %-f  0 %-tr " ..
        "cascade_tiny %-c 3d_cascade_fullres %-p TinyPlans %-prev_stage_predictions OUTPUT_FOLDER_PREV_STAGE\n", txt)
    end)
  end)
end)
