-- lunet.predict: sliding window, mirroring, fold ensembles, export and files, against nnunetv2's nnUNetPredictor
-- (fixtures from scripts/fixtures/make_predict_fixtures.py) and against known answers.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local predict = require "lunet.predict"
local image = require "lunet.io.image"
local paths = require "lunet.util.paths"

local FX = "spec/fixtures/predict/"
local fake = json.read(FX .. "fake.json")
local cases = json.read(FX .. "cases.json")
local plans = json.read(FX .. "plans.json")
local dj = json.read(FX .. "dataset.json")

local function tmpdir()
  local d = os.tmpname()
  os.remove(d)
  paths.mkdirs(d)
  return d
end

local function deepcopy(t)
  if type(t) ~= "table" then return t end
  local o = {}
  for k, v in pairs(t) do o[k] = deepcopy(v) end
  return setmetatable(o, getmetatable(t))
end

-- A model of per-voxel logits: fn(k (0-based), x (flat input), v (1-based voxel), n (voxels per channel),
-- pos {z, y, x} (0-based, in the window), size {pz, py, px}, C, spatial dims) -> logit k; a 2-D window
-- is (1, py, px).
local function voxel_model(K, fn)
  return { forward = function(x)
    local sh = x.shape
    local sp = {}
    for i = 3, #sh do sp[#sp + 1] = sh[i] end
    while #sp < 3 do table.insert(sp, 1, 1) end
    local n = sp[1] * sp[2] * sp[3]
    local xf, out, pos = x:flat(), {}, { 0, 0, 0 }
    for k = 0, K - 1 do
      for z = 0, sp[1] - 1 do
        for y = 0, sp[2] - 1 do
          for xx = 0, sp[3] - 1 do
            local v = (z * sp[2] + y) * sp[3] + xx + 1
            pos[1], pos[2], pos[3] = z, y, xx
            out[k * n + v] = fn(k, xf, v, n, pos, sp, sh[2], #sh - 2)
          end
        end
      end
    end
    local oshape = { 1, K }
    for i = 3, #sh do oshape[#oshape + 1] = sh[i] end
    return lunet.tensor(out, { shape = oshape, dtype = "f32" })
  end }
end

-- The oracle's fake network (make_predict_fixtures.py, class Fake): logits_k = w_k . x + b_k + sum_a r_ka *
-- (i_a / (n_a - 1) - 0.5) over the patch axes: depends on the position in the window, not mirror-invariant.
local function fake_model(p)
  local w, b, r = p.w, p.b, p.r
  return voxel_model(#w, function(k, xf, v, n, pos, sp, C, nsp)
    local wk, rk = w[k + 1], r[k + 1]
    local s = b[k + 1]
    for c = 1, C do s = s + wk[c] * xf[(c - 1) * n + v] end
    for a = 1, nsp do
      local ax = 3 - nsp + a
      s = s + rk[a] * (pos[ax] / math.max(sp[ax] - 1, 1) - 0.5)
    end
    return s
  end)
end

local function maxdiff(a, b)
  local fa, fb = a:flat(), b:flat()
  assert.are.equal(#fb, #fa)
  local m = 0
  for i = 1, #fa do m = math.max(m, math.abs(fa[i] - fb[i])) end
  return m
end

local function agreement(a, b)
  local fa, fb = a:flat(), b:flat()
  assert.are.equal(#fb, #fa)
  local eq = 0
  for i = 1, #fa do if fa[i] == fb[i] then eq = eq + 1 end end
  return eq / #fa
end

describe("sliding window geometry equals nnunetv2", function()
  it("compute_steps_for_sliding_window", function()
    for _, s in ipairs(json.read(FX .. "steps.json")) do
      assert.are.same(s.steps, core.infer.steps(s.size, s.patch, s.step))
    end
    assert.has_error(function() core.infer.steps(10, 20, 0.5) end)
    assert.has_error(function() core.infer.steps(30, 20, 0) end)
  end)

  it("compute_gaussian (sigma 1/8, value_scaling_factor 10, float16, zeros -> min non-zero) bit for bit", function()
    for _, s in ipairs({ { 8, 24, 24 }, { 5, 6, 7 }, { 16, 16, 16 }, { 32, 40 }, { 40, 48, 56 } }) do
      local ref = lunet.io.npy.read(FX .. "gauss_" .. table.concat(s, "x") .. ".npy")
      local g = core.infer.gaussian(s)
      assert.are.equal(0, maxdiff(g, ref))
    end
  end)

  it("mirror masks follow itertools.combinations order", function()
    assert.are.same({ 0, 1, 2, 4, 3, 5, 6, 7 }, predict._flip_masks({ 0, 1, 2 }, false))
    assert.are.same({ 0, 2, 4, 6 }, predict._flip_masks({ 0, 1 }, true))
    assert.are.same({ 0, 2 }, predict._flip_masks({ 1 }, false))
  end)

  it("extract pads with zeros and flips; accumulate un-flips", function()
    local d = lunet.tensor({ 1, 2, 3, 4, 5, 6 }, { shape = { 1, 1, 2, 3 }, dtype = "f32" })
    -- padded to (1, 4, 3): pad_before y = 1
    local p = core.infer.extract(d, { 0, 1, 0 }, { 0, 0, 0 }, { 1, 4, 3 }, 0)
    assert.are.same({ 0, 0, 0, 1, 2, 3, 4, 5, 6, 0, 0, 0 }, p:flat())
    local f = core.infer.extract(d, { 0, 1, 0 }, { 0, 0, 0 }, { 1, 4, 3 }, 4)
    assert.are.same({ 0, 0, 0, 3, 2, 1, 6, 5, 4, 0, 0, 0 }, f:flat())
    local win = core.zeros({ 1, 1, 1, 4, 3 }, "f32")
    core.infer.window_add(win, f, { 1, 4, 3 }, 4, true)
    assert.are.same(p:flat(), win:flat())
  end)
end)

describe("predict.image equals nnunetv2's nnUNetPredictor.predict_single_npy_array", function()
  local img = lunet.io.npy.read(FX .. "case_img.npy")
  local prev = lunet.io.npy.read(FX .. "prev_seg.npy")
  for _, c in ipairs(cases.cases) do
    it(c.name .. ": " .. c.configuration .. ", folds " .. table.concat(c.folds, ",") .. ", mirror "
      .. (c.mirror_axes == json.null and "off" or table.concat(c.mirror_axes, ",")) .. ", step " .. c.step
      .. (c.cascade and ", cascade" or ""), function()
      local cin = c.cascade and "3" or "1"
      local models = {}
      for i, f in ipairs(c.folds) do models[i] = fake_model(fake[cin][f + 1]) end
      local mirror = c.mirror_axes ~= json.null and c.mirror_axes or nil
      local opts = { plans = plans, configuration = c.configuration, dataset_json = dj, step_size = c.step,
        disable_tta = mirror == nil, tta_axes = mirror, threads = 2, prev_seg = c.cascade and prev or nil }
      opts.return_logits = true
      local lg = predict.image(models, img, { spacing = cases.spacing }, opts)
      local ref_lg = lunet.io.npy.read(FX .. c.name .. "_logits.npy")
      assert.are.same(ref_lg.shape, lg.shape)
      assert.is_true(maxdiff(lg, ref_lg) < 2e-3, "logits differ by " .. maxdiff(lg, ref_lg))
      opts.return_logits = nil
      opts.probabilities = true
      local seg, probs = predict.image(models, img, { spacing = cases.spacing }, opts)
      local ref_seg = lunet.io.npy.read(FX .. c.name .. "_seg.npy")
      assert.are.same({ 30, 28, 10 }, seg.shape)
      assert.is_true(agreement(seg, ref_seg) >= 0.999, "segmentation agreement " .. agreement(seg, ref_seg))
      local ref_p = lunet.io.npy.read(FX .. c.name .. "_prob.npy")
      assert.are.same(ref_p.shape, probs.shape)
      assert.is_true(maxdiff(probs, ref_p) < 1e-3, "probabilities differ by " .. maxdiff(probs, ref_p))
      -- the one-class-at-a-time export gives the same segmentation
      opts.probabilities = nil
      opts.stream = false
      local seg2 = predict.image(models, img, { spacing = cases.spacing }, opts)
      assert.are.equal(1, agreement(seg2, seg))
      -- so does streaming (sliding window and export slab by slab along axis 0): bit for bit with one model;
      -- several models share one accumulator, which may round differently in float16
      opts.stream = true
      local seg3 = predict.image(models, img, { spacing = cases.spacing }, opts)
      if #models == 1 then assert.are.equal(1, agreement(seg3, seg2))
      else assert.is_true(agreement(seg3, ref_seg) >= 0.999, "streamed agreement " .. agreement(seg3, ref_seg)) end
    end)
  end

  it("regions: sigmoid outputs painted in regions_class_order, probabilities = sigmoid", function()
    local rdj = json.read(FX .. "dataset_regions.json")
    local m = fake_model(fake.regions)
    local seg, probs = predict.image({ m }, img, { spacing = cases.spacing }, { plans = plans,
      configuration = "3d_fullres", dataset_json = rdj, probabilities = true })
    assert.is_true(agreement(seg, lunet.io.npy.read(FX .. "regions_seg.npy")) >= 0.999)
    assert.is_true(maxdiff(probs, lunet.io.npy.read(FX .. "regions_prob.npy")) < 1e-3)
    local seg2 = predict.image({ m }, img, { spacing = cases.spacing }, { plans = plans,
      configuration = "3d_fullres", dataset_json = rdj })
    assert.are.equal(1, agreement(seg2, seg))
  end)

  it("a fold ensemble is the average of the folds' logits (and, the model being linear, the mean-weight model)", function()
    local one = {}
    local mean = { w = {}, b = {}, r = {} }
    for f = 1, 5 do
      local p = fake["1"][f]
      one[f] = fake_model(p)
      for k = 1, 3 do
        mean.w[k] = mean.w[k] or { 0 }
        mean.w[k][1] = mean.w[k][1] + p.w[k][1] / 5
        mean.b[k] = (mean.b[k] or 0) + p.b[k] / 5
        mean.r[k] = mean.r[k] or { 0, 0, 0 }
        for a = 1, 3 do mean.r[k][a] = mean.r[k][a] + p.r[k][a] / 5 end
      end
    end
    local opts = { plans = plans, configuration = "3d_fullres", dataset_json = dj, disable_tta = true,
      return_logits = true, half = false }
    local ens = predict.image(one, img, { spacing = cases.spacing }, opts)
    local sum
    for f = 1, 5 do
      local l = predict.image({ one[f] }, img, { spacing = cases.spacing }, opts)
      if sum then core.infer.add_(sum, l, false) else sum = l end
    end
    core.infer.scale_(sum, 0.2, false)
    assert.is_true(maxdiff(ens, sum) < 1e-5)
    local m = predict.image({ fake_model(mean) }, img, { spacing = cases.spacing }, opts)
    assert.is_true(maxdiff(ens, m) < 1e-4)
  end)
end)

-- ------------------------------------------------------------------------------------------------ known answers

-- A label map L and an image L + 1 (zero on a border: nonzero cropping); a model whose logits are
-- -(x - (k + 1))^2 gives back L. Plans: no normalisation, configuration spacing = the image's (transposed).
local function known_case()
  local Z, Y, X = 14, 12, 9
  local L, I = {}, {}
  for z = 0, Z - 1 do
    for y = 0, Y - 1 do
      for x = 0, X - 1 do
        local i = (z * Y + y) * X + x + 1
        local l = (z // 4 + y // 3 + x // 2) % 3
        if z < 2 or y == Y - 1 then l = -1 end
        L[i] = math.max(l, 0)
        I[i] = l + 1
      end
    end
  end
  local kp = deepcopy(plans)
  local c = kp.configurations["3d_fullres"]
  c.spacing = { 4.5, 0.9, 1.0 }
  c.normalization_schemes = { "NoNormalization" }
  c.patch_size = { 8, 8, 8 }
  return {
    shape = { Z, Y, X }, labels = L,
    img = lunet.tensor(I, { shape = { 1, Z, Y, X }, dtype = "f32" }),
    plans = kp,
    model = { forward = function(x)
      local xf = x:flat()
      local n = #xf
      local out = {}
      for k = 0, 2 do
        for i = 1, n do out[k * n + i] = -(xf[i] - (k + 1)) ^ 2 end
      end
      local sh = x.shape
      return lunet.tensor(out, { shape = { 1, 3, sh[3], sh[4], sh[5] }, dtype = "f32" })
    end },
  }
end

describe("predict.folder writes what nnU-Net writes", function()
  local kc = known_case()
  local geom = { spacing = { 4.5, 1.0, 0.9 }, origin = { -12.5, 30.25, 7.0 },
                 direction = { 0, 0, 1, 0.6, 0.8, 0, -0.8, 0.6, 0 } }

  it("a known segmentation, with the input's exact geometry, as the dataset's file ending", function()
    local root = tmpdir()
    local inp, out = root .. "/in", root .. "/out"
    paths.mkdirs(inp)
    image.write(inp .. "/case7_0000.nii.gz", kc.img, { sitk = geom })
    local ids = predict.folder{ input = inp, output = out, models = { kc.model }, plans_json = kc.plans,
      dataset_json = dj, configuration = "3d_fullres", progress = false, save_probabilities = true }
    assert.are.same({ "case7" }, ids)
    local r = image.read(out .. "/case7.nii.gz")
    local src = image.read(inp .. "/case7_0000.nii.gz")
    assert.are.same(src.sitk, r.sitk)
    assert.are.same({ 1, 14, 12, 9 }, r.data.shape)
    assert.are.equal("u8", r.data.dtype)
    assert.are.same(kc.labels, r.data:flat())
    -- probabilities (C, *original shape) and properties beside them, as lunet.ensemble reads them
    local z = core.npz.read(out .. "/case7.npz")
    assert.are.same({ 3, 14, 12, 9 }, z.probabilities.shape)
    assert.are.equal("f32", z.probabilities.dtype)
    local props = json.read(out .. "/case7.json")
    assert.are.same(src.sitk, props.sitk_stuff)
    assert.are.same({ 9, 14, 12 }, props.shape_before_cropping)
    -- and nnU-Net's <case>.pkl with the same properties (nnUNetv2_ensemble reads the geometry there)
    local pk = require("lunet.io.pickles").read_properties(out .. "/case7.pkl")
    assert.are.same(src.sitk, { spacing = { table.unpack(pk.sitk_stuff.spacing) },
      origin = { table.unpack(pk.sitk_stuff.origin) }, direction = { table.unpack(pk.sitk_stuff.direction) } })
    assert.are.same({ 9, 14, 12 }, { table.unpack(pk.shape_before_cropping) })
    assert.are.same(props.bbox_used_for_cropping[2], { table.unpack(pk.bbox_used_for_cropping[2]) })
    for _, f in ipairs({ "dataset.json", "plans.json", "predict_from_raw_data_args.json" }) do
      assert.is_true(paths.isfile(out .. "/" .. f), f)
    end
    -- no temporary files left
    for _, f in ipairs(paths.listdir(out)) do assert.is_nil(f:match("tmp"), f) end
  end)

  it("-num_parts/-part_id split one folder over runs that may write it at the same time (nnU-Net's part_id::num_parts)",
    function()
    local root = tmpdir()
    local inp, out = root .. "/in", root .. "/out"
    paths.mkdirs(inp)
    for i = 1, 3 do image.write(("%s/c%d_0000.nii.gz"):format(inp, i), kc.img, { sitk = geom }) end
    local function part(k)
      return predict.folder{ input = inp, output = out, models = { kc.model }, plans_json = kc.plans, dataset_json = dj,
        configuration = "3d_fullres", progress = false, disable_tta = true, num_parts = 2, part_id = k,
        preprocess_workers = 0, export_workers = 0 }
    end
    paths.mkdirs(out)
    -- part 0 is running (its lock is held) while part 1 runs: both write the folder
    local held = core.lock.acquire(out, "part 0", ".lunet-part-0-of-2.lock")
    assert.are.same({ "c2" }, part(1))
    local ok, err = pcall(part, 0)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("(part 0 of 2)", 1, true), err)
    held:release()
    assert.are.same({ "c1", "c3" }, part(0))
    for i = 1, 3 do assert.is_true(paths.isfile(("%s/c%d.nii.gz"):format(out, i))) end
    local cli = require "lunet.cli.predict"
    assert.has_error(function() cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "-num_parts", "2", "-part_id", "2" }) end,
      "-part_id 2 needs -num_parts above it (parts are 0..num_parts-1)")
  end)

  it("exports in child processes (-nps) write the same files as exports in line, and a failing one names its case", function()
    local root = tmpdir()
    local inp = root .. "/in"
    paths.mkdirs(inp)
    for i = 1, 3 do image.write(("%s/c%d_0000.nii.gz"):format(inp, i), kc.img, { sitk = geom }) end
    local function run(out, workers, extra)
      local o = { input = inp, output = out, models = { kc.model }, plans_json = kc.plans, dataset_json = dj,
        configuration = "3d_fullres", progress = false, disable_tta = true, export_workers = workers,
        save_probabilities = true }
      for k, v in pairs(extra or {}) do o[k] = v end
      return predict.folder(o)
    end
    run(root .. "/seq", 0, { preprocess_workers = 0 })
    run(root .. "/par", 2, { preprocess_workers = 2 })
    -- streamed cases (no probabilities) come back as segmentations whose writing still runs in a child
    run(root .. "/str", 1, { save_probabilities = false, stream = true })
    for i = 1, 3 do
      for _, ext in ipairs({ ".nii.gz", ".npz", ".json", ".pkl" }) do
        local a = io.open(("%s/seq/c%d%s"):format(root, i, ext), "rb"):read("a")
        local b = io.open(("%s/par/c%d%s"):format(root, i, ext), "rb"):read("a")
        assert.is_true(#a > 0 and a == b, "c" .. i .. ext)
      end
      local a = io.open(("%s/seq/c%d.nii.gz"):format(root, i), "rb"):read("a")
      assert.are.equal(a, io.open(("%s/str/c%d.nii.gz"):format(root, i), "rb"):read("a"), "streamed c" .. i)
      assert.is_nil(io.open(("%s/str/c%d.npz"):format(root, i), "rb"))
    end
    -- a child whose export fails (a non-empty folder where c1's segmentation goes): the parent names the case
    paths.mkdirs(root .. "/bad/c1.nii.gz/x")
    local ok, err = pcall(run, root .. "/bad", 1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("case c1: export failed", 1, true), tostring(err))
    -- a case whose preprocessing fails in its child (a truncated image): named, and no scratch files left
    local inp2 = root .. "/in2"
    paths.mkdirs(inp2)
    for i = 1, 3 do
      local src = io.open(("%s/c%d_0000.nii.gz"):format(inp, i), "rb"):read("a")
      if i == 2 then src = src:sub(1, 100) end
      local fh = io.open(("%s/c%d_0000.nii.gz"):format(inp2, i), "wb")
      fh:write(src)
      fh:close()
    end
    local o = { input = inp2, output = root .. "/bad2", models = { kc.model }, plans_json = kc.plans, dataset_json = dj,
      configuration = "3d_fullres", progress = false, disable_tta = true, preprocess_workers = 2 }
    ok, err = pcall(predict.folder, o)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("case c2: preprocessing failed", 1, true), tostring(err))
    for _, f in ipairs(paths.listdir(root .. "/bad2")) do
      assert.is_nil(f:find("lunet%-preprocess"), "scratch left behind: " .. f)
    end
    assert.is_true(paths.isfile(root .. "/bad2/c1.nii.gz"))
  end)

  it("continue_prediction skips finished cases; a cascade configuration without previous stage fails", function()
    local root = tmpdir()
    local inp, out = root .. "/in", root .. "/out"
    paths.mkdirs(inp)
    image.write(inp .. "/c_0000.nii.gz", kc.img, { sitk = geom })
    local calls = 0
    local m = { forward = function(x) calls = calls + 1; return kc.model.forward(x) end }
    local o = { input = inp, output = out, models = { m }, plans_json = kc.plans, dataset_json = dj,
      configuration = "3d_fullres", progress = false, disable_tta = true }
    predict.folder(o)
    local n1 = calls
    assert.is_true(n1 > 0)
    o.continue_prediction = true
    local ids, skipped = predict.folder(o)
    assert.are.equal(n1, calls)
    assert.are.same({ { "c" }, 1 }, { ids, skipped })
    -- scratch folders of killed runs on this host are removed, those of live processes kept (pid 1 always lives;
    -- 99999999 is above any pid_max)
    local host = (io.open("/proc/sys/kernel/hostname") or io.open("/dev/null")):read("l")
    if host and paths.isdir("/proc/self") then
      host = host:gsub("[^%w%.]", "_")
      local dead, old, live, other = ".lunet-preprocess-99999999-" .. host, ".lunet-preprocess-99999998",
        ".lunet-preprocess-1-" .. host, ".lunet-preprocess-99999997-elsewhere"
      -- a killed run whose process stays a zombie (its parent does not reap: PID 1 of some containers)
      local zpid = core.proc.fork()
      if zpid == 0 then core.proc.exit(0) end
      os.execute("sleep 0.2")
      local zombie = ".lunet-preprocess-" .. zpid .. "-" .. host
      for _, d in ipairs({ dead, old, live, other, zombie }) do paths.mkdirs(out .. "/" .. d .. "/x") end
      -- half-written files of a killed run (C's and Lua's temp names) go too; a user's file stays
      local leftovers = { "case1.nii.gz.tmp-Ab3xYz", "plans.json.tmp1765000000.12345", "notes.tmp-txt" }
      for _, n in ipairs(leftovers) do io.open(out .. "/" .. n, "w"):close() end
      o.continue_prediction = false
      o.preprocess_workers = 1
      predict.folder(o)
      core.proc.wait(zpid)
      assert.is_false(paths.exists(out .. "/" .. zombie))
      assert.is_false(paths.exists(out .. "/" .. dead))
      assert.is_false(paths.exists(out .. "/" .. old))
      assert.is_true(paths.isdir(out .. "/" .. live))
      assert.is_true(paths.isdir(out .. "/" .. other))
      assert.is_false(paths.exists(out .. "/" .. leftovers[1]))
      assert.is_false(paths.exists(out .. "/" .. leftovers[2]))
      assert.is_true(paths.exists(out .. "/" .. leftovers[3]))
      os.remove(out .. "/" .. leftovers[3])
      -- and its own is gone after the run
      for _, f in ipairs(paths.listdir(out)) do
        assert.is_true(f == live or f == other or not f:find("lunet%-preprocess"), "scratch left behind: " .. f)
      end
    end
    local cp = deepcopy(kc.plans)
    cp.configurations["3d_cascade_fullres"] = { inherits_from = "3d_fullres", previous_stage = "3d_lowres" }
    assert.has_error(function()
      predict.folder{ input = inp, output = out, models = { m }, plans_json = cp, dataset_json = dj,
        configuration = "3d_cascade_fullres", progress = false }
    end, "predict: configuration 3d_cascade_fullres is a cascade stage: --prev-stage-predictions is required")
  end)

  it("cascade from files: --prev-stage-predictions segmentations (u8 NIfTI) become one-hot input channels", function()
    local root = tmpdir()
    paths.mkdirs(root .. "/in")
    paths.mkdirs(root .. "/prev")
    local g = { spacing = { 4.5, 1.0, 0.9 }, origin = { 0, 0, 0 }, direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } }
    image.write(root .. "/in/c_0000.nii.gz", lunet.io.npy.read(FX .. "case_img.npy"), { sitk = g })
    image.write_seg(root .. "/prev/c.nii.gz", lunet.io.npy.read(FX .. "prev_seg.npy"):astype("u8"), { sitk = g })
    predict.folder{ input = root .. "/in", output = root .. "/out", models = { fake_model(fake["3"][1]) },
      plans_json = plans, dataset_json = dj, configuration = "3d_fullres", progress = false, disable_tta = true,
      prev_stage_predictions = root .. "/prev" }
    local seg = image.read(root .. "/out/c.nii.gz").data
    assert.is_true(agreement(seg, lunet.io.npy.read(FX .. "cascade_seg.npy")) >= 0.999)
    os.remove(root .. "/prev/c.nii.gz")
    assert.has_error(function()
      predict.folder{ input = root .. "/in", output = root .. "/out2", models = { fake_model(fake["3"][1]) },
        plans_json = plans, dataset_json = dj, configuration = "3d_fullres", progress = false,
        prev_stage_predictions = root .. "/prev" }
    end, "predict: previous stage prediction missing: " .. root .. "/prev/c.nii.gz")
  end)

  it("ensembling 5 folds' probability files (lunet.ensemble) gives the average of the 5 probability maps", function()
    local root = tmpdir()
    local inp = root .. "/in"
    paths.mkdirs(inp)
    local img = lunet.io.npy.read(FX .. "case_img.npy")
    image.write(inp .. "/e_0000.nii.gz", img, { sitk = { spacing = { 4.5, 1.0, 0.9 }, origin = { 0, 0, 0 },
      direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } } })
    local dirs, probs = {}, {}
    for f = 1, 5 do
      dirs[f] = root .. "/fold" .. f
      predict.folder{ input = inp, output = dirs[f], models = { fake_model(fake["1"][f]) }, plans_json = plans,
        dataset_json = dj, configuration = "3d_fullres", progress = false, save_probabilities = true,
        disable_tta = true }
      probs[f] = core.npz.read(dirs[f] .. "/e.npz").probabilities:flat()
    end
    require("lunet.ensemble").folders(dirs, root .. "/ens", { save_npz = true })
    local avg = core.npz.read(root .. "/ens/e.npz").probabilities
    local af = avg:flat()
    local n = #af // 3
    local want_seg = {}
    for i = 1, #af do
      local s = 0
      for f = 1, 5 do s = s + probs[f][i] end
      assert.is_true(math.abs(af[i] - s / 5) < 1e-6)
    end
    for v = 1, n do
      local best, bk = -1, 0
      for k = 0, 2 do if af[k * n + v] > best then best, bk = af[k * n + v], k end end
      want_seg[v] = bk
    end
    local seg = image.read(root .. "/ens/e.nii.gz")
    assert.are.same(want_seg, seg.data:flat())
    assert.are.same(image.read(inp .. "/e_0000.nii.gz").sitk, seg.sitk)
  end)
end)

-- ------------------------------------------------------------------------------------------------ streaming

describe("streaming prediction (sliding window and export slab by slab along axis 0)", function()
  -- A smooth image and a 5-class model whose logits depend on intensity and on the position in the window
  -- (so overlapping windows disagree and the Gaussian weighting matters). Plans: the fixture's transposition
  -- (2, 0, 1), no normalisation, spacings chosen per case so that export resamples axis 0 linearly (up or
  -- down), not at all (2-D), or separately.
  local Z, Y, X = 23, 19, 34
  local K = 5
  local vals = {}
  for z = 0, Z - 1 do
    for y = 0, Y - 1 do
      for x = 0, X - 1 do
        vals[#vals + 1] = 2.5 + 2.2 * math.sin(z * 0.37 + y * 0.21) * math.cos(x * 0.29 - y * 0.13)
      end
    end
  end
  local img = lunet.tensor(vals, { shape = { 1, Z, Y, X }, dtype = "f32" })
  local spacing = { 1.1, 0.9, 1.0 } -- transposed (2, 0, 1): axis 0 of the preprocessed grid is X
  local model = voxel_model(K, function(k, xf, v, _, pos, sp)
    return -(xf[v] - k) ^ 2 + 0.3 * (k - 2) * (pos[1] / sp[1] - pos[2] / sp[2] + 0.5 * pos[3] / sp[3])
  end)
  local kdj = deepcopy(dj)
  kdj.labels = { background = 0, a = 1, b = 2, c = 3, d = 4 }
  local function plans_with(cfg, sp, patch)
    local p = deepcopy(plans)
    local c = p.configurations[cfg]
    c.spacing = sp
    c.patch_size = patch
    c.normalization_schemes = { "NoNormalization" }
    return p
  end
  local CASES = {
    { "3-D, axis 0 upsampled linearly on export", "3d_fullres", { 1.45, 1.0, 0.8 }, { 8, 8, 16 } },
    { "3-D, axis 0 downsampled linearly on export", "3d_fullres", { 0.7, 1.3, 1.2 }, { 16, 8, 8 } },
    { "3-D, separate z across axis 0 (nearest)", "3d_fullres", { 4.0, 1.0, 1.0 }, { 4, 16, 16 } },
    { "2-D: one slice per row of windows", "2d", { 0.8, 1.2 }, { 16, 16 } },
  }
  for _, c in ipairs(CASES) do
    it(c[1] .. ": the same segmentation bit for bit, mirroring on", function()
      local opts = { plans = plans_with(c[2], c[3], c[4]), configuration = c[2], dataset_json = kdj, threads = 2 }
      opts.stream = false
      local whole = predict.image({ model }, img, { spacing = spacing }, opts)
      opts.stream = true
      local streamed = predict.image({ model }, img, { spacing = spacing }, opts)
      assert.are.same(whole.shape, streamed.shape)
      assert.are.same({ Z, Y, X }, streamed.shape)
      local counts = {}
      for _, v in ipairs(streamed:flat()) do counts[v] = (counts[v] or 0) + 1 end
      assert.is_true(#counts >= 3, "the case should use several classes") -- keys 1..4 present (0 not counted)
      assert.are.equal(1, agreement(whole, streamed))
    end)
  end

  it("regions stream too, and a cubic export across axis 0 is refused by name", function()
    local rdj = deepcopy(dj)
    rdj.labels = { background = 0, whole = { 1, 2, 3, 4 }, inner = { 2, 3, 4 }, core = { 3, 4 }, tip = 4 }
    rdj.regions_class_order = { 1, 2, 3, 4 }
    local m4 = { forward = function(x)
      local o = model.forward(x)
      local sh = o.shape
      local f, n = o:flat(), sh[3] * sh[4] * sh[5]
      local out = {}
      for i = n + 1, 5 * n do out[#out + 1] = f[i] - f[i - n] end
      return lunet.tensor(out, { shape = { 1, 4, sh[3], sh[4], sh[5] }, dtype = "f32" })
    end }
    local opts = { plans = plans_with("3d_fullres", { 1.45, 1.0, 0.8 }, { 8, 8, 16 }), configuration = "3d_fullres",
      dataset_json = rdj, stream = false }
    local whole = predict.image({ m4 }, img, { spacing = spacing }, opts)
    opts.stream = true
    assert.are.equal(1, agreement(whole, predict.image({ m4 }, img, { spacing = spacing }, opts)))
    local cubic = plans_with("3d_fullres", { 1.45, 1.0, 0.8 }, { 8, 8, 16 })
    cubic.configurations["3d_fullres"].resampling_fn_probabilities_kwargs = { is_seg = false, order = 3, order_z = 0,
      force_separate_z = json.null }
    local ok, err = pcall(predict.image, { model }, img, { spacing = spacing }, { plans = cubic,
      configuration = "3d_fullres", dataset_json = kdj, stream = true })
    assert.is_false(ok)
    assert.matches("stream = true, but .*order 3", tostring(err))
  end)

  it("holds no full-resolution class volume, and class data that does not grow with the volume's length", function()
    -- 5 classes: the whole-volume path holds the float16 logits of the volume (10 bytes per voxel) and f32
    -- class volumes; streaming, a ring of one patch of rows plus one, one slab of one class and the label maps
    local kp = plans_with("3d_fullres", { 1.0, 1.0, 1.0 }, { 4, 16, 16 })
    local info = require("lunet.dataset").label_info(kdj.labels)
    local settings = { patch = { 4, 16, 16 }, threads = 2 }
    local function peak_of(fn)
      collectgarbage()
      local before = core.host_memory(true).live
      local seg = fn()
      return core.host_memory().peak - before, seg
    end
    local function peaks(vol, sp)
      local data, p = predict.preprocessed(vol, { spacing = sp }, { plans = kp, configuration = "3d_fullres",
        dataset_json = kdj })
      local pw, sw = peak_of(function()
        local lg = predict.sliding_window({ model }, data, settings)
        local seg = predict.export(lg, p, kp, "3d_fullres", info, {})
        lg:free()
        return seg
      end)
      local ps, ss = peak_of(function() return predict.stream({ model }, data, p, kp, "3d_fullres", info, settings) end)
      assert.are.equal(1, agreement(sw, ss))
      return pw, ps
    end
    local nvox = Z * Y * X
    local pw, ps = peaks(img, spacing)
    -- the windows' own buffers (input patch, the model's output, the mirrored sum, the Gaussian) are per patch
    local windows = (1 + 2 * K + 1) * 4 * 16 * 16 * 4
    local labels = 2 * nvox -- the label map and its un-transposed copy (u8)
    assert.is_true(ps - windows - labels <= 4 * nvox, string.format("streamed: %d bytes beyond windows and labels "
      .. "> one f32 class volume (%d)", ps - windows - labels, 4 * nvox))
    assert.is_true(pw - windows - labels > 2 * 4 * nvox, "whole-volume peak " .. pw .. ": the bound would not tell")
    -- twice as long along preprocessed axis 0 (the image's X): only the label maps grow when streaming
    local long = {}
    local f = img:flat()
    for z = 0, Z - 1 do
      for y = 0, Y - 1 do
        for x = 0, 2 * X - 1 do
          local xm = x < X and x or 2 * X - 1 - x
          long[#long + 1] = f[(z * Y + y) * X + xm + 1]
        end
      end
    end
    local pw2, ps2 = peaks(lunet.tensor(long, { shape = { 1, Z, Y, 2 * X }, dtype = "f32" }), spacing)
    assert.is_true(ps2 - ps <= labels + 64, string.format("streamed peak grew by %d bytes for %d more label bytes",
      ps2 - ps, labels))
    assert.is_true(pw2 - pw > 10 * nvox, "whole-volume peak grew by only " .. (pw2 - pw))
  end)
end)

describe("export", function()
  -- identity geometry: preprocessed space = original space
  local Z, Y, X = 5, 6, 7
  local function props(bbox, full)
    return { spacing = { 2.0, 1.0, 1.0 }, shape_before_cropping = full, bbox_used_for_cropping = bbox,
      shape_after_cropping_and_before_resampling = { bbox[1][2] - bbox[1][1], bbox[2][2] - bbox[2][1],
        bbox[3][2] - bbox[3][1] } }
  end
  local ep = { transpose_forward = { 0, 1, 2 }, transpose_backward = { 0, 1, 2 },
    configurations = { c = { spacing = { 2.0, 1.0, 1.0 }, patch_size = { 4, 4, 4 },
      resampling_fn_probabilities_kwargs = { is_seg = false, order = 1, order_z = 0, force_separate_z = json.null } } } }
  local L = {}
  for i = 1, Z * Y * X do L[i] = (i * 7) % 3 end

  it("labels: argmax, un-crop (background outside; probabilities: channel 0 = 1 outside) and transpose back", function()
    local lg = {}
    for k = 0, 2 do for i = 1, #L do lg[k * #L + i] = L[i] == k and 4.0 or -1.0 end end
    local logits = lunet.tensor(lg, { shape = { 3, Z, Y, X }, dtype = "f32" })
    local info = require("lunet.dataset").label_info(dj.labels)
    local full = { 7, 8, 9 }
    local bbox = { { 1, 6 }, { 2, 8 }, { 0, 7 } }
    local tp = deepcopy(ep)
    tp.transpose_backward = { 2, 0, 1 }
    local seg, pr = predict.export(logits, props(bbox, full), tp, "c", info, { probabilities = true })
    assert.are.same({ 9, 7, 8 }, seg.shape)
    assert.are.same({ 3, 9, 7, 8 }, pr.shape)
    local sf, pf = seg:flat(), pr:flat()
    local n = 7 * 8 * 9
    for x = 0, 8 do for z = 0, 6 do for y = 0, 7 do
      local o = (x * 7 + z) * 8 + y + 1
      local inside = z >= 1 and z < 6 and y >= 2 and y < 8 and x < 7
      local want = inside and L[((z - 1) * Y + (y - 2)) * X + x + 1] or 0
      assert.are.equal(want, sf[o])
      if not inside then
        assert.are.same({ 1, 0, 0 }, { pf[o], pf[n + o], pf[2 * n + o] })
      else
        assert.is_true(math.abs(pf[o] + pf[n + o] + pf[2 * n + o] - 1) < 1e-6)
      end
    end end end
  end)

  it("regions: sigmoid > 0.5 painted in regions_class_order", function()
    local rdj = { labels = { background = 0, whole = { 1, 2 }, core = 2 }, regions_class_order = { 1, 2 } }
    local info = require("lunet.dataset").label_info(rdj.labels, rdj.regions_class_order)
    local lg = {}
    for i = 1, #L do
      lg[i] = L[i] >= 1 and 2.0 or -2.0
      lg[#L + i] = L[i] == 2 and 3.0 or -3.0
    end
    local logits = lunet.tensor(lg, { shape = { 2, Z, Y, X }, dtype = "f32" })
    local full = { Z, Y, X }
    local bbox = { { 0, Z }, { 0, Y }, { 0, X } }
    local seg = predict.export(logits, props(bbox, full), ep, "c", info, {})
    assert.are.same(L, seg:flat())
    local seg2, pr = predict.export(logits, props(bbox, full), ep, "c", info, { probabilities = true })
    assert.are.same(L, seg2:flat())
    assert.is_true(math.abs(pr:flat()[1] - 1 / (1 + math.exp(L[1] >= 1 and -2 or 2))) < 1e-3)
  end)

  it("resampling round trip: a label map upsampled as one-hot logits and exported comes back", function()
    -- preprocessed space at 2x in-plane resolution (nearest upsampling of L): exporting resamples back down
    local info = require("lunet.dataset").label_info(dj.labels)
    local Y2, X2 = Y * 2, X * 2
    local lg = {}
    local n2 = Z * Y2 * X2
    for k = 0, 2 do
      for z = 0, Z - 1 do for y = 0, Y2 - 1 do for x = 0, X2 - 1 do
        local l = L[(z * Y + y // 2) * X + x // 2 + 1]
        lg[k * n2 + (z * Y2 + y) * X2 + x + 1] = l == k and 5.0 or -5.0
      end end end
    end
    local logits = lunet.tensor(lg, { shape = { 3, Z, Y2, X2 }, dtype = "f32" })
    local p = deepcopy(ep)
    p.configurations.c.spacing = { 2.0, 0.5, 0.5 }
    local seg = predict.export(logits, props({ { 0, Z }, { 0, Y }, { 0, X } }, { Z, Y, X }), p, "c", info, {})
    assert.are.same(L, seg:flat())
  end)
end)

describe("lunet predict CLI", function()
  local cli = require "lunet.cli.predict"
  it("parses nnU-Net's flags", function()
    local o = cli.parse({ "-i", "IN", "-o", "OUT", "-d", "4", "-c", "3d_fullres", "-f", "0", "1", "-tr", "T", "-p",
      "P", "-chk", "checkpoint_best", "--step-size", "0.6", "--disable-tta", "--save-probabilities",
      "--prev-stage-predictions", "PREV", "-np", "3", "--tta-axes", "0,2", "--device", "1", "-nps", "2",
      "--stream", "off", "-npp", "3" })
    assert.are.same({ input = "IN", output = "OUT", dataset = "4", configuration = "3d_fullres", folds = { 0, 1 },
      trainer = "T", plans = "P", checkpoint = "checkpoint_best", step_size = 0.6, disable_tta = true,
      save_probabilities = true, prev_stage_predictions = "PREV", threads = 3, tta_axes = { 0, 2 }, device = 1,
      export_workers = 2, stream = false, preprocess_workers = 3 }, o)
    assert.is_true(cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--stream", "on" }).stream)
    assert.is_nil(cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--stream", "auto" }).stream)
    assert.has_error(function() cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--stream", "yes" }) end)
    assert.are.equal("all", cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "-f", "all" }).folds)
    assert.are.equal(4, cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--mirror-batch", "4" }).mirror_batch)
    assert.has_error(function() cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--mirror-batch", "0" }) end)
    assert.has_error(function() cli.parse({ "-i", "a" }) end)
    assert.has_error(function() cli.parse({ "-i", "a", "-o", "b", "-d", "1", "-c", "2d", "--bogus" }) end)
  end)
end)

-- the PlainConvUNet converted from nnunetv2 (fixtures), its plans and the case it was run on
local function real_network()
  local nplans = json.read(FX .. "net_plans.json")
  local net = lunet.net(nplans, "3d_fullres", 1, 3)
  net:load(FX .. "net.pth")
  return net, nplans, lunet.io.npy.read(FX .. "case_img.npy")
end

describe("with a real network (lunet.net, weights converted from an nnunetv2 PlainConvUNet)", function()
  it("the segmentation equals nnunetv2's predictor on >= 99.9% of voxels, with and without mirroring", function()
    local net, nplans, img = real_network()
    local m = { forward = function(x) return net:forward(x)[1] end }
    for _, v in ipairs({ { "net_mirror", false }, { "net_nomirror", true } }) do
      local seg = predict.image({ m }, img, { spacing = cases.spacing }, { plans = nplans,
        configuration = "3d_fullres", dataset_json = dj, disable_tta = v[2] })
      local ref = lunet.io.npy.read(FX .. v[1] .. "_seg.npy")
      local a = agreement(seg, ref)
      assert.is_true(a >= 0.999, v[1] .. ": agreement " .. a)
    end
  end)

  it("in mixed precision (float16 activations, as nnU-Net autocasts on CUDA) it still equals nnunetv2's on >= 99.5% "
    .. "of voxels, with the logits close to float32's", function()
    local net, nplans, img = real_network()
    local m = { forward = function(x) return net:forward(x)[1] end }
    local function run()
      return predict.image({ m }, img, { spacing = cases.spacing }, { plans = nplans, configuration = "3d_fullres",
        dataset_json = dj, disable_tta = true, probabilities = true })
    end
    local seg32, p32 = run()
    net.core:set_half_inference(true)
    local ref = lunet.io.npy.read(FX .. "net_nomirror_seg.npy")
    -- the float32 copies around each conv (CPUs), then the implicit GEMM that GPUs run, forced here
    for _, igemm in ipairs({ 0, 1 }) do
      core.tune.set("conv.igemm", igemm)
      local seg, p16 = run()
      local a = agreement(seg, ref)
      assert.is_true(a >= 0.995, "conv.igemm " .. igemm .. ": agreement " .. a)
      local worst = 0
      local f32, f16 = p32:flat(), p16:flat()
      for i = 1, #f32 do worst = math.max(worst, math.abs(f32[i] - f16[i])) end
      assert.is_true(worst < 0.02, "conv.igemm " .. igemm .. ": probabilities differ by " .. worst)
      assert.is_true(worst > 0, "float16 activations were stored") -- not float32 again
    end
    core.tune.set("conv.igemm", nil)
    net.core:set_half_inference(false)
    local again = run()
    assert.are.same(seg32:flat(), again:flat())
  end)
end)

describe("mirrorings batched into one forward", function()
  it("give the windows' sums of one mirroring per forward (mirror_batch)", function()
    -- a 2-D network on a 24x24 patch (3 stages of 8..32 channels), random weights
    local p2 = deepcopy(plans)
    local kw = p2.configurations["2d"].architecture.arch_kwargs
    kw.n_stages, kw.features_per_stage = 3, { 8, 16, 32 }
    kw.kernel_sizes, kw.strides = { { 3, 3 }, { 3, 3 }, { 3, 3 } }, { { 1, 1 }, { 2, 2 }, { 2, 2 } }
    kw.n_conv_per_stage, kw.n_conv_per_stage_decoder = { 2, 2, 2 }, { 2, 2 }
    local net = lunet.net(p2, "2d", 1, 3, { init = true })
    net:freeze_weights()
    local rs = {}
    for i = 1, 3 * 40 * 30 do rs[i] = math.sin(i * 0.37) + 0.3 * math.cos(i * 0.011) end
    local data = lunet.tensor(rs, { shape = { 1, 3, 40, 30 }, dtype = "f32" })
    local seen
    local function model(batched)
      return { batched = batched, forward = function(x)
        seen[#seen + 1] = x.shape[1]
        return net:forward(x)[1]
      end }
    end
    local function run(m, mb)
      seen = {}
      return predict.sliding_window({ m }, data, { patch = { 24, 24 }, mirror_axes = { 0, 1 }, half = false,
        mirror_batch = mb }):flat(), seen
    end
    local one, s1 = run(model(false))
    assert.are.same({ 1, 1, 1, 1 }, { s1[1], s1[2], s1[3], s1[4] }) -- a plain table: one window per forward
    assert.are.equal(3 * 3 * 2 * 4, #s1) -- 3 slices x 3 x 2 windows x 4 mirrorings
    local _, sd = run(model(true))
    assert.are.equal(36, #sd) -- by default a 2-D window's mirrorings two at a time
    assert.are.same({ 2, 2 }, { sd[1], sd[2] })
    local four, s4 = run(model(true), 4)
    assert.are.equal(18, #s4) -- a 2-D window's 4 mirrorings at once
    assert.are.equal(4, s4[1])
    local three, s3 = run(model(true), 3)
    assert.are.same({ 3, 1, 3, 1 }, { s3[1], s3[2], s3[3], s3[4] })
    assert.are.equal(#one, #four)
    local worst = 0
    for i = 1, #one do
      worst = math.max(worst, math.abs(one[i] - four[i]) / math.max(1, math.abs(one[i])),
        math.abs(one[i] - three[i]) / math.max(1, math.abs(one[i])))
    end
    -- the same windows, summed in the same order; only the kernels' blocking may differ with the batch
    assert.is_true(worst < 1e-5, "worst relative difference " .. worst)
    local ok, err = pcall(predict.sliding_window, { model(true) }, data, { patch = { 24, 24 }, mirror_batch = 0 })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("mirror_batch must be a positive integer", 1, true), tostring(err))
    -- a lunet.net itself takes batches; window_add reads the batch's window by its slot
    local win = core.zeros({ 1, 1, 1, 2, 2 }, "f32")
    local lg = lunet.tensor({ 1, 2, 3, 4, 5, 6, 7, 8 }, { shape = { 2, 1, 2, 2 }, dtype = "f32" })
    core.infer.window_add(win, lg, { 1, 2, 2 }, 4, true, 1)
    assert.are.same({ 6, 5, 8, 7 }, win:flat())
    assert.has_error(function() core.infer.window_add(win, lg, { 1, 2, 2 }, 0, false, 2) end)
    -- the window summed into the accumulator is one window, never a batch
    local acc = core.zeros({ 1, 1, 2, 2 }, "f32")
    local ok2, err2 = pcall(core.infer.accumulate, acc, nil, lg, nil, { 0, 0, 0 }, { 1, 2, 2 }, 1, false, 1)
    assert.is_false(ok2)
    assert.truthy(tostring(err2):find("model output has shape 2x1x2x2", 1, true), tostring(err2))
  end)
end)

describe("sliding-window sums on the device", function()
  it("equal the host's float16-emulated sums (mirroring, Gaussian, half and float32 accumulators)", function()
    local net, nplans, img = real_network()
    local patch = nplans.configurations["3d_fullres"].patch_size
    for _, half in ipairs({ true, false }) do
      local function run(where)
        return predict.sliding_window(net, img, { patch = patch, mirror_axes = { 0, 1, 2 }, half = half,
          accumulate = where }):flat()
      end
      local a, b = run("host"), run("device")
      assert.are.equal(#a, #b)
      assert.are.equal(3 * 30 * 28 * 10, #a)
      local same, worst = 0, 0
      for i = 1, #a do
        if a[i] == b[i] then same = same + 1 end
        worst = math.max(worst, math.abs(a[i] - b[i]) / math.max(1, math.abs(a[i])))
      end
      -- operation for operation the same; a fused multiply-add in either compiler may move an
      -- element by one float16 step (2^-10 relative)
      assert.is_true(same / #a >= 0.999, ("half=%s: %d of %d equal"):format(tostring(half), same, #a))
      assert.is_true(worst <= 2 ^ -10, ("half=%s: worst relative difference %g"):format(tostring(half), worst))
    end
  end)

  it("checks its inputs: device accumulation needs lunet.net models and a power-of-two divisor", function()
    local img = lunet.io.npy.read(FX .. "case_img.npy")
    local ok, err = pcall(predict.sliding_window, function(x) return x end, img,
      { patch = { 16, 16, 16 }, accumulate = "device" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("needs lunet.net models", 1, true), tostring(err))
    local acc = core.zeros({ 1, 4, 4, 4 }, "f32", true)
    local win = core.zeros({ 1, 1, 2, 2, 2 }, "f32", true)
    ok, err = pcall(core.infer.accumulate, acc, nil, win, nil, { 0, 0, 0 }, { 2, 2, 2 }, 3, false, 1)
    assert.is_false(ok)
    assert.truthy(tostring(err):find("power of two", 1, true), tostring(err))
  end)
end)

describe("lunet predict from a results folder", function()
  it("loads fold_N/checkpoint_final.pth models, averages folds and writes the segmentation (child process)", function()
    local root = tmpdir()
    for _, d in ipairs({ "raw", "pre", "res", "in" }) do paths.mkdirs(root .. "/" .. d) end
    local mdir = root .. "/res/Dataset990_LuPredict/nnUNetTrainer__nnUNetPlans__3d_fullres"
    local ck = io.open(FX .. "net.pth", "rb"):read("a")
    for _, f in ipairs({ 0, 1 }) do
      paths.mkdirs(mdir .. "/fold_" .. f)
      local h = io.open(mdir .. "/fold_" .. f .. "/checkpoint_final.pth", "wb")
      h:write(ck)
      h:close()
    end
    json.write(mdir .. "/plans.json", json.read(FX .. "net_plans.json"))
    json.write(mdir .. "/dataset.json", dj)
    local img = lunet.io.npy.read(FX .. "case_img.npy")
    image.write(root .. "/in/k1_0000.nii.gz", img, { sitk = { spacing = { 4.5, 1.0, 0.9 }, origin = { 1, 2, 3 },
      direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } } })
    local cmd = string.format("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre nnUNet_results=%s/res scripts/lunet predict "
      .. "-i %s/in -o %s/out -d 990 -c 3d_fullres -f 0 1 --disable-tta -np 2 2>&1", root, root, root, root, root)
    local p = io.popen(cmd)
    local outp = p:read("a")
    local ok = p:close()
    assert.is_true(ok, outp)
    local seg = image.read(root .. "/out/k1.nii.gz")
    assert.are.same({ 1, 2, 3 }, seg.sitk.origin)
    local ref = lunet.io.npy.read(FX .. "net_nomirror_seg.npy")
    assert.is_true(agreement(seg.data, ref) >= 0.999)
    local args = json.read(root .. "/out/predict_from_raw_data_args.json")
    assert.are.equal(false, args.use_mirroring)
    -- mixed precision (a GPU's default) on request
    p = io.popen((cmd:gsub("/out ", "/out_mixed --precision mixed ")))
    outp = p:read("a")
    assert.is_true(p:close(), outp)
    assert.is_true(agreement(image.read(root .. "/out_mixed/k1.nii.gz").data, ref) >= 0.995)
    -- a missing fold is reported with its folder
    p = io.popen((cmd:gsub("%-f 0 1", "-f 0 3")))
    outp = p:read("a")
    assert.is_falsy(p:close())
    assert.is_truthy(outp:find("fold_3", 1, true), outp)
    -- a second run with --continue-prediction predicts nothing and says so
    p = io.popen((cmd:gsub("%-np 2", "-np 2 --continue-prediction")))
    outp = p:read("a")
    assert.is_true(p:close(), outp)
    assert.is_truthy(outp:find("predicted 0 cases into " .. root .. "/out, 1 already done (kept by "
      .. "--continue-prediction; leave it out to predict them again)", 1, true), outp)
    -- a configuration that was not trained: named, with what was trained
    p = io.popen((cmd:gsub("%-c 3d_fullres", "-c 4d_superres")))
    outp = p:read("a")
    assert.is_falsy(p:close())
    assert.is_truthy(outp:find("model folder not found: " .. root .. "/res/Dataset990_LuPredict/"
      .. "nnUNetTrainer__nnUNetPlans__4d_superres; configurations trained with nnUNetTrainer and nnUNetPlans: "
      .. "3d_fullres", 1, true), outp)
  end)
end)
