-- Preprocessing against nnunetv2 2.8.1 (golden fixtures from scripts/fixtures/make_preprocess_fixtures.py):
-- resampling primitives against skimage/batchgenerators, then every case of every configuration of three datasets
-- (anisotropic MR with separate-z, CT with transpose and CT normalisation, 2-D RGB), in memory and through
-- preprocess.run (files, resume).
local lunet = require "lunet"
local json = require "lunet.util.json"
local pp = require "lunet.preprocess"
local dataset = require "lunet.dataset"
local core = lunet.core

local F = "spec/fixtures/preprocess/"
local DATASETS = {
  Dataset901_LuAniso = { cases = { "an_000", "an_001", "an_002" }, cfgs = { "2d", "3d_fullres" } },
  Dataset902_LuCT = { cases = { "ct_000", "ct_001", "ct_002" }, cfgs = { "2d", "3d_fullres" } },
  Dataset903_Lu2D = { cases = { "im_000", "im_001", "im_002" }, cfgs = { "2d" } },
}
local ORDER = { "Dataset901_LuAniso", "Dataset902_LuCT", "Dataset903_Lu2D" }

local function shape_str(t) return table.concat(t.shape, "x") end

local function max_abs_diff(a, b)
  local x, y = a:flat(), b:flat()
  assert.are.equal(#x, #y)
  local m = 0
  for i = 1, #x do
    local d = math.abs(x[i] - y[i])
    if d > m or d ~= d then m = d ~= d and math.huge or d end
  end
  return m
end

local function mismatches(a, b)
  local x, y = a:flat(), b:flat()
  assert.are.equal(#x, #y)
  local n = 0
  for i = 1, #x do if x[i] ~= y[i] then n = n + 1 end end
  return n, #x
end

local tmpdir = require("spec.support.tmp").dir

describe("preprocess: resampling primitives (skimage 0.26 / batchgenerators 0.25)", function()
  local R = F .. "resample/"
  local img = lunet.io.npy.read(R .. "img3d_in.npy")
  local seg = lunet.io.npy.read(R .. "seg3d_in.npy")
  local function as4(t) -- (Z,Y,X) -> (1,Z,Y,X)
    return core.from_bytes(t:bytes(), { 1, t.shape[1], t.shape[2], t.shape[3] }, t.dtype)
  end
  for _, name in ipairs({ "up", "down", "mixed" }) do
    it("order-3 image resize (" .. name .. ") equals skimage.resize within 1e-5", function()
      local e = lunet.io.npy.read(R .. "img3d_" .. name .. ".npy")
      -- isotropic spacing: never separate-z
      local out = core.preprocess.resample(as4(img), e.shape, { 1, 1, 1 }, { 1, 1, 1 },
        { is_seg = false, order = 3, force_separate_z = false }, 2)
      assert.are.equal("1x" .. shape_str(e), shape_str(out))
      assert.is_true(max_abs_diff(out, as4(e)) < 1e-5)
    end)
    it("order-1 seg resize (" .. name .. ") equals resize_segmentation (argmax, nearest tiebreak) exactly", function()
      local e = lunet.io.npy.read(R .. "seg3d_" .. name .. ".npy")
      local out = core.preprocess.resample(as4(seg), e.shape, { 1, 1, 1 }, { 1, 1, 1 },
        { is_seg = true, order = 1, force_separate_z = false }, 2)
      assert.are.equal(0, (mismatches(out, as4(e))))
    end)
  end
  it("separate-z resampling of data (cubic in-plane, nearest along z) equals nnU-Net", function()
    local x = lunet.io.npy.read(R .. "sepz_data_in.npy")
    local e = lunet.io.npy.read(R .. "sepz_data_out.npy")
    local out = core.preprocess.resample(x, { 9, 8, 13 }, { 5, 1, 1 }, { 2.9, 1.5, 0.77 },
      { is_seg = false, order = 3, order_z = 0 }, 2)
    assert.are.equal(shape_str(e), shape_str(out))
    assert.is_true(max_abs_diff(out, e) < 1e-5)
  end)
  it("separate-z resampling of a segmentation equals nnU-Net", function()
    local x = lunet.io.npy.read(R .. "sepz_seg_in.npy")
    local e = lunet.io.npy.read(R .. "sepz_seg_out.npy")
    local out = core.preprocess.resample(x, { 9, 8, 13 }, { 5, 1, 1 }, { 2.9, 1.5, 0.77 },
      { is_seg = true, order = 1, order_z = 0 }, 1)
    assert.are.equal(0, (mismatches(out, e)))
  end)
  it("separate-z decision and new shape follow nnU-Net", function()
    local sep, axis = core.preprocess.sep_z({ 5, 1, 1 }, { 5, 1, 1 })
    assert.is_true(sep); assert.are.equal(0, axis)
    sep, axis = core.preprocess.sep_z({ 1, 1, 1 }, { 1, 1, 4 })
    assert.is_true(sep); assert.are.equal(2, axis)
    sep = core.preprocess.sep_z({ 0.24, 1.25, 1.25 }, { 1, 1, 1 }) -- two low-res axes: off
    assert.is_false(sep)
    sep = core.preprocess.sep_z({ 2, 1, 1 }, { 2, 1, 1 })
    assert.is_false(sep)
    -- round half to even as Python's round
    assert.are.same({ 2, 4, 10 }, core.preprocess.compute_new_shape({ 5, 5, 10 }, { 1, 1, 1 }, { 2, 1.25, 1 }))
  end)
end)

describe("preprocess: resampling rows of axis 0 (streaming export)", function()
  local pre = core.preprocess
  -- (input shape, output shape, current spacing, new spacing, options): non-separate linear up and down,
  -- separate z across axis 0 (nearest and linear), separate across axis 2, axis 0 unchanged, nearest 3-D
  local CASES = {
    { "linear, axis 0 upsampled", { 11, 9, 7 }, { 23, 13, 6 }, { 1, 1, 1 }, { 0.5, 0.7, 1.2 }, { order = 1 } },
    { "linear, axis 0 downsampled", { 29, 8, 9 }, { 12, 8, 11 }, { 1, 1, 1 }, { 2.4, 1, 0.8 }, { order = 1 } },
    { "separate z along axis 0, nearest", { 9, 10, 8 }, { 31, 14, 11 }, { 4, 1, 1 }, { 1.2, 0.7, 0.7 },
      { order = 1, order_z = 0 } },
    { "separate z along axis 0, linear", { 9, 10, 8 }, { 20, 7, 11 }, { 4, 1, 1 }, { 1.8, 1.4, 0.7 },
      { order = 3, order_z = 1 } },
    { "separate z along axis 2", { 13, 10, 5 }, { 17, 8, 16 }, { 1, 1, 4 }, { 0.8, 1.25, 1.25 },
      { order = 1, order_z = 0 } },
    { "axis 0 unchanged, linear in-plane", { 10, 9, 8 }, { 10, 15, 5 }, { 1, 1, 1 }, { 1, 0.6, 1.6 }, { order = 1 } },
    { "separate z along axis 0 of unchanged size, cubic in-plane", { 10, 9, 8 }, { 10, 15, 5 }, { 4, 1, 1 },
      { 4, 0.6, 1.6 }, { order = 3, order_z = 0 } },
    { "nearest", { 12, 9, 8 }, { 25, 6, 8 }, { 1, 1, 1 }, { 0.48, 1.5, 1 }, { order = 0 } },
  }
  local function random_volume(shape, seed)
    local r, v = seed, {}
    for i = 1, shape[1] * shape[2] * shape[3] do
      r = (r * 1103515245 + 12345) % 2147483648
      v[i] = r / 2147483648 * 8 - 4
    end
    return core.tensor(v, { shape = { 1, shape[1], shape[2], shape[3] } })
  end
  local function rows_of(t, r0, n)
    local f, per, out = t:flat(), t.shape[3] * t.shape[4], {}
    for i = r0 * per + 1, (r0 + n) * per do out[#out + 1] = f[i] end
    return core.tensor(out, { shape = { 1, n, t.shape[3], t.shape[4] } })
  end
  for ci, c in ipairs(CASES) do
    local name, din, dout, cur, new, opts = table.unpack(c)
    it(name .. ": every slab of output rows equals those rows of the whole resample, bit for bit", function()
      local vol = random_volume(din, 977 * ci)
      local whole = pre.resample(vol, dout, cur, new, opts, 2)
      local wf = whole:flat()
      local per = dout[2] * dout[3]
      for _, chunk in ipairs({ 1, 3, dout[1] }) do
        for o0 = 0, dout[1] - 1, chunk do
          local n = math.min(chunk, dout[1] - o0)
          local lo, hi = pre.resample_rows_needed(din, dout, cur, new, opts, o0, n)
          assert.is_truthy(lo, hi)
          assert.is_true(lo >= 0 and hi < din[1] and lo <= hi)
          local part = pre.resample_rows(rows_of(vol, lo, hi - lo + 1), lo, din[1], dout, o0, n, cur, new, opts, 2)
          assert.are.same({ 1, n, dout[2], dout[3] }, part.shape)
          local pf = part:flat()
          for i = 1, #pf do
            if pf[i] ~= wf[o0 * per + i] then
              error(string.format("output row %d, element %d: %.9g vs whole %.9g", o0 + (i - 1) // per, i, pf[i],
                wf[o0 * per + i]))
            end
          end
          if lo > 0 or hi < din[1] - 1 then
            -- one row fewer than needed is refused, not silently wrong
            local short = hi > lo and rows_of(vol, lo + 1, hi - lo) or nil
            if short then
              local ok, err = pcall(pre.resample_rows, short, lo + 1, din[1], dout, o0, n, cur, new, opts, 1)
              assert.is_false(ok)
              assert.matches("miss row", tostring(err))
            end
          end
        end
      end
    end)
  end
  it("cubic interpolation across axis 0, or clipped to the whole volume, does not stream, and says why", function()
    local lo, msg = pre.resample_rows_needed({ 10, 8, 8 }, { 20, 8, 8 }, { 1, 1, 1 }, { 0.5, 1, 1 }, { order = 3 }, 0, 4)
    assert.is_nil(lo)
    assert.matches("order 3 along axis 0", msg)
    lo, msg = pre.resample_rows_needed({ 10, 8, 8 }, { 10, 16, 8 }, { 1, 1, 1 }, { 1, 0.5, 1 }, { order = 3 }, 0, 4)
    assert.is_nil(lo)
    assert.matches("whole volume", msg)
    local ok, err = pcall(pre.resample_rows, core.zeros({ 1, 4, 8, 8 }, "f32"), 0, 10, { 10, 16, 8 }, 0, 4,
      { 1, 1, 1 }, { 1, 0.5, 1 }, { order = 3 }, 1)
    assert.is_false(ok)
    assert.matches("whole volume", tostring(err))
  end)
end)

describe("preprocess: cases equal nnunetv2's preprocessed output", function()
  for _, ds in ipairs(ORDER) do
    local spec = DATASETS[ds]
    local plans = lunet.planner.read(F .. ds .. "/plans.json")
    local dj = json.read(F .. ds .. "/raw/dataset.json")
    local labels = dataset.label_info(dj.labels, dj.regions_class_order)
    for _, cfg in ipairs(spec.cfgs) do
      for _, case in ipairs(spec.cases) do
        it(ds .. " " .. cfg .. " " .. case, function()
          local ip = F .. ds .. "/in/" .. case
          local props = json.read(ip .. ".json")
          local img = lunet.io.npy.read(ip .. "_data.npy")
          local seg = lunet.io.npy.read(ip .. "_seg.npy")
          local data, s, p = pp.run_case({ img }, seg, props, plans, cfg, { labels = labels, threads = 2 })
          local ep = F .. ds .. "/" .. cfg .. "/" .. case
          local e, es = lunet.io.npy.read(ep .. "_data.npy"), lunet.io.npy.read(ep .. "_seg.npy")
          local eprops = json.read(ep .. ".json")
          assert.are.equal(shape_str(e), shape_str(data))
          assert.are.equal(shape_str(es), shape_str(s))
          assert.is_true(max_abs_diff(data, e) <= 1e-3)
          local mm, n = mismatches(s, es)
          assert.is_true(mm <= 0.005 * n, string.format("%d of %d seg voxels differ", mm, n))
          assert.are.equal("i8", s.dtype)
          assert.are.same(eprops.shape_before_cropping, p.shape_before_cropping)
          assert.are.same(eprops.shape_after_cropping_and_before_resampling,
            p.shape_after_cropping_and_before_resampling)
          assert.are.same(eprops.bbox_used_for_cropping, p.bbox_used_for_cropping)
          -- class locations: same keys, counts within 1 (in fact the very same voxels, as numpy draws them)
          local nk = 0
          for k, v in pairs(eprops.class_locations) do
            nk = nk + 1
            local mine = p.class_locations[k]
            assert.is_not_nil(mine, "class " .. k)
            assert.is_true(math.abs(mine.shape[1] - #v) <= 1)
            local fl = mine:flat()
            for r = 1, #v do
              for q = 1, 4 do assert.are.equal(v[r][q], fl[(r - 1) * 4 + q]) end
            end
          end
          local mk = 0
          for _ in pairs(p.class_locations) do mk = mk + 1 end
          assert.are.equal(nk, mk)
        end)
      end
    end
  end

  it("class locations for labels, regions and the annotated tuple equal nnU-Net's draw (1 % rule > 10000)", function()
    local fx = json.read(F .. "classloc/formula_seg.json")
    local sh = fx.shape
    local v = {}
    for z = 0, sh[2] - 1 do
      for y = 0, sh[3] - 1 do
        for x = 0, sh[4] - 1 do
          local l = (z * 7 + y * 3 + x) % 5 - 1
          if y < 150 and l == 3 then l = 0 end
          v[#v + 1] = l
        end
      end
    end
    local seg = lunet.tensor(v, { shape = sh, dtype = "i16" })
    local locs = core.preprocess.class_locations(seg, fx.classes, 1234)
    for i, k in ipairs(fx.keys) do
      local want = fx.results[k]
      local t = locs[i]
      assert.are.equal(want.n, t.shape[1], k)
      local fl = t:flat()
      local sum = { 0, 0, 0, 0 }
      for r = 0, t.shape[1] - 1 do for q = 1, 4 do sum[q] = sum[q] + fl[r * 4 + q] end end
      assert.are.same(want.sum, sum, k)
      for r, row in ipairs(want.first) do
        for q = 1, 4 do assert.are.equal(row[q], fl[(r - 1) * 4 + q]) end
      end
    end
  end)

  it("run_case without a segmentation (inference) gives the same data and a 0/-1 mask", function()
    local ds = "Dataset901_LuAniso"
    local plans = lunet.planner.read(F .. ds .. "/plans.json")
    local ip = F .. ds .. "/in/an_000"
    local data, s, p = pp.run_case({ lunet.io.npy.read(ip .. "_data.npy") }, nil, json.read(ip .. ".json"), plans,
      "3d_fullres", { threads = 1 })
    local e = lunet.io.npy.read(F .. ds .. "/3d_fullres/an_000_data.npy")
    assert.is_true(max_abs_diff(data, e) <= 1e-3)
    assert.is_nil(p.class_locations)
    -- the outside (-1) matches the training seg's except where a label met the mask border (the argmax then
    -- weighs the merged foreground against -1): a handful of boundary voxels
    local es = lunet.io.npy.read(F .. ds .. "/3d_fullres/an_000_seg.npy"):flat()
    local diff = 0
    for i, x in ipairs(s:flat()) do
      assert.is_true(x == 0 or x == -1)
      if (es[i] < 0) ~= (x < 0) then diff = diff + 1 end
    end
    assert.is_true(diff <= 0.005 * #es, diff .. " voxels")
  end)

  it("normalisation schemes follow nnU-Net's formulas", function()
    local t = lunet.tensor({ 0, 1, 2, 3, 4, 5, 6, 7 }, { shape = { 2, 1, 2, 2 }, dtype = "f32" })
    core.preprocess.normalize(t, 1, "RescaleTo01Normalization", false)
    core.preprocess.normalize(t, 2, "CTNormalization", false, nil,
      { mean = 5, std = 2, percentile_00_5 = 4.5, percentile_99_5 = 6 })
    local f = t:flat()
    local want = { 0, 1 / 3, 2 / 3, 1, (4.5 - 5) / 2, 0, 0.5, 0.5 }
    for i = 1, 8 do assert.is_true(math.abs(f[i] - want[i]) < 1e-6) end
    -- z-score within the mask (seg >= 0) leaves the outside untouched
    local z = lunet.tensor({ 1, 2, 3, 9 }, { shape = { 1, 1, 2, 2 }, dtype = "f32" })
    local m = lunet.tensor({ 0, 0, 0, -1 }, { shape = { 1, 1, 2, 2 }, dtype = "i16" })
    core.preprocess.normalize(z, 1, "ZScoreNormalization", true, m)
    local g = z:flat()
    local sd = math.sqrt(2 / 3)
    assert.is_true(math.abs(g[1] + 1 / sd) < 1e-6 and math.abs(g[2]) < 1e-6 and g[4] == 9)
    assert.has_error(function()
      core.preprocess.normalize(lunet.tensor({ 300 }, { shape = { 1, 1, 1, 1 }, dtype = "f32" }), 1,
        "RGBTo01Normalization", false)
    end)
  end)

  it("crop fills holes in 3-D but not in single-slice images, and marks the outside -1", function()
    -- 3-D: a 5x5x5 shell with a hollow centre: the hole is filled, so the seg inside stays 0
    local vals = {}
    for z = 0, 4 do for y = 0, 4 do for x = 0, 4 do
      local inside = z >= 1 and z <= 3 and y >= 1 and y <= 3 and x >= 1 and x <= 3
      vals[#vals + 1] = (inside and not (z == 2 and y == 2 and x == 2)) and 1 or 0
    end end end
    local d = lunet.tensor(vals, { shape = { 1, 5, 5, 5 }, dtype = "f32" })
    local cd, cs, bbox = core.preprocess.crop(d, nil)
    assert.are.same({ { 1, 4 }, { 1, 4 }, { 1, 4 } }, bbox)
    assert.are.equal("1x3x3x3", shape_str(cd))
    for _, v in ipairs(cs:flat()) do assert.are.equal(0, v) end
    -- 2-D (Z = 1): the same hole is not filled
    local v2 = {}
    for y = 0, 4 do for x = 0, 4 do
      v2[#v2 + 1] = (y >= 1 and y <= 3 and x >= 1 and x <= 3 and not (y == 2 and x == 2)) and 1 or 0
    end end
    local _, s2 = core.preprocess.crop(lunet.tensor(v2, { shape = { 1, 1, 5, 5 }, dtype = "f32" }), nil)
    assert.are.equal(-1, s2:flat()[5])
  end)
end)

describe("preprocess.run: files, resume", function()
  local ds_name = "Dataset901_LuAniso"
  local root
  local old_env = {}
  setup(function()
    root = tmpdir()
    assert(os.execute("mkdir -p " .. root .. "/raw " .. root .. "/pre " .. root .. "/res"))
  end)
  teardown(function() if root then os.execute("rm -rf " .. root) end end)

  local function run(cfg, cases)
    local ds = dataset.open(root .. "/raw/" .. ds_name)
    local plans = lunet.planner.read(F .. ds_name .. "/plans.json")
    return pp.run(ds, plans, cfg, { threads = 2, progress = false, out_root = root .. "/pre/" .. ds_name,
      cases = cases })
  end

  for _, dsn in ipairs(ORDER) do
    it(dsn .. ": files read from raw images, stored and read back equal nnU-Net's; complete cases are skipped",
      function()
      assert(os.execute("cp -r " .. F .. dsn .. "/raw " .. root .. "/raw/" .. dsn))
      local ds = dataset.open(root .. "/raw/" .. dsn)
      local plans = lunet.planner.read(F .. dsn .. "/plans.json")
      local out = root .. "/pre/" .. dsn
      local cfgs = DATASETS[dsn].cfgs
      local sum = pp.run(ds, plans, cfgs, { threads = 2, progress = false, out_root = out })
      for _, cfg in ipairs(cfgs) do
        assert.are.equal(3, sum[cfg].done)
        local dir = out .. "/nnUNetPlans_" .. cfg .. "/lunet/"
        for _, case in ipairs(DATASETS[dsn].cases) do
          local st = lunet.io.store.open(dir .. case .. ".lcs")
          local ep = F .. dsn .. "/" .. cfg .. "/" .. case
          local e, es = lunet.io.npy.read(ep .. "_data.npy"), lunet.io.npy.read(ep .. "_seg.npy")
          assert.are.equal(table.concat({ e.shape[2], e.shape[3], e.shape[4] }, "x"), table.concat(st.shape, "x"))
          local d, s = st:read_patch({ 0, 0, 0 }, st.shape)
          assert.is_true(max_abs_diff(d, e) <= 1e-3)
          assert.are.equal(0, (mismatches(s, es)))
          local props = json.read(dir .. case .. ".json")
          local eprops = json.read(ep .. ".json")
          for _, k in ipairs({ "bbox_used_for_cropping", "shape_before_cropping", "class_locations",
            "shape_after_cropping_and_before_resampling", "spacing", "sitk_stuff" }) do
            assert.are.same(eprops[k], props[k], k)
          end
          -- class order kept (nnU-Net's dict order) and exposed as the sampler's list
          local ekeys = json.keys(eprops.class_locations)
          assert.are.same(ekeys, st.class_keys)
          for i, k in ipairs(ekeys) do assert.are.equal(#eprops.class_locations[k], st.class_locations[i].shape[1]) end
          st:close()
        end
      end
      local again = pp.run(ds, plans, cfgs, { threads = 2, progress = false, out_root = out })
      for _, cfg in ipairs(cfgs) do
        assert.are.equal(0, again[cfg].done)
        assert.are.equal(3, again[cfg].skipped)
      end
    end)
  end

  it("a case the plans do not fit fails with the case, the configuration and the reason", function()
    local ds = dataset.open(root .. "/raw/" .. ds_name)
    local plans = lunet.planner.read(F .. "Dataset902_LuCT/plans.json") -- 2 channels, the data has 1
    local ok, err = pcall(pp.run, ds, plans, "3d_fullres", { threads = 2, progress = false, out_root = root .. "/bad" })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("preprocess 3d_fullres: case an_00%d"))
    assert.truthy(tostring(err):find("the case has 1 channels, the plans normalise 2", 1, true))
  end)

  it("an interrupted run (truncated store, missing json) resumes to the same files", function()
    local dir = root .. "/pre/" .. ds_name .. "/nnUNetPlans_2d/lunet/"
    run("2d")
    local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
    local ref = {}
    for _, case in ipairs(DATASETS[ds_name].cases) do
      ref[case] = { slurp(dir .. case .. ".lcs"), slurp(dir .. case .. ".json") }
    end
    -- simulate a kill: one store cut short, one properties file never written, one temp file left behind
    local s = ref.an_001[1]
    local f = assert(io.open(dir .. "an_001.lcs", "wb")); f:write(s:sub(1, #s // 2)); f:close()
    os.remove(dir .. "an_002.json")
    f = assert(io.open(dir .. ".an_000.lcs.tmpXYZ", "wb")); f:write("junk"); f:close()
    local sum = run("2d")
    assert.are.equal(2, sum["2d"].done)
    for _, case in ipairs(DATASETS[ds_name].cases) do
      assert.are.equal(ref[case][1], slurp(dir .. case .. ".lcs"))
      assert.are.equal(ref[case][2], slurp(dir .. case .. ".json"))
    end
  end)

  it("a killed process mid-run resumes to identical files", function()
    local dir = root .. "/pre/" .. ds_name .. "/nnUNetPlans_2d/lunet/"
    local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
    local ref = {}
    for _, case in ipairs(DATASETS[ds_name].cases) do ref[case] = slurp(dir .. case .. ".lcs") end
    os.execute("rm -rf " .. dir)
    -- start a separate process and kill it almost at once, then rerun here
    local cmd = string.format("cd %q && . scripts/env.sh && (timeout -s KILL 0.3 lua5.4 -e '" ..
      "local pp=require\"lunet.preprocess\"; local ds=require\"lunet.dataset\".open(%q); " ..
      "pp.run(ds, require\"lunet.planner\".read(%q), \"2d\", {threads=1, progress=false, out_root=%q})' " ..
      ">/dev/null 2>&1; true)", os.getenv("PWD") or ".", root .. "/raw/" .. ds_name,
      F .. ds_name .. "/plans.json", root .. "/pre/" .. ds_name)
    os.execute("bash -c " .. string.format("%q", cmd) .. " >/dev/null 2>&1")
    run("2d")
    for _, case in ipairs(DATASETS[ds_name].cases) do assert.are.equal(ref[case], slurp(dir .. case .. ".lcs")) end
  end)
end)
