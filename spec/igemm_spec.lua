-- The implicit-GEMM convolutions (csrc/ops/conv/igemm.c, kernels/conv/igemm.cl): every pass of conv and
-- convT on the float FMA tiles and on the tensor-core fragments emulated in plain OpenCL (conv.mma =
-- emulate: PTX mma.sync's m16n8k16 f16 / m16n8k8 tf32 register layouts, exchanged through local memory),
-- with float32 and float16 activations, against the float64 reference computed from the values the op
-- actually reads (float16 inputs rounded on the host first).
--
-- Tolerances, relative to max |reference| as in conv_spec: float32 on FMA tiles 1e-4 (float32 sums);
-- anything through float16 or tf32 2e-3: one rounding of each operand (tf32 and f16 keep 10 mantissa
-- bits, 2^-11 relative) and of a float16 output, with float32 sums. Weight gradients are float32 outputs
-- of exact f16 products, so f16 inputs keep 1e-4 there.
local lunet = require "lunet"
local core = require "lunet.core"
local conv = core.conv
local support = require "spec.support.conv"

local NaN = 0 / 0

local numel, rand_flat, close = support.numel, support.rand_stream(4242), support.close

local function filled(shape, dtype, v)
  local t = {}
  for i = 1, numel(shape) do t[i] = v end
  return lunet.tensor(t, { shape = shape, dtype = dtype }):to_device()
end

-- A device tensor of `dtype` and the float32 host tensor of the values it holds (for the reference).
local function operand(shape, dtype, flat)
  local t = lunet.tensor(flat or rand_flat(numel(shape)), { shape = shape, dtype = dtype })
  return t:to_device(), lunet.tensor(t:flat(), { shape = shape, dtype = "f32" })
end

local weight_shape = support.weight_shape

-- Forward, backward data and backward weight (+ bias, overwritten and accumulated) of case c with
-- activations of `dtype`; tol for the activation outputs, wtol for the weight and bias gradients.
local function check_case(c, transposed, dtype, tol, wtol)
  local xs = { c.n, c.cin, table.unpack(c.x) }
  local ws = weight_shape(c, transposed)
  local opts = transposed and { stride = c.stride } or { k = c.k, stride = c.stride }
  local ys = transposed and conv.T_out_shape(xs, c.cout, opts) or conv.out_shape(xs, c.cout, opts)
  local x, xh = operand(xs, dtype)
  local dy, dyh = operand(ys, dtype)
  local w, wh = operand(ws, "f32")
  local b, bh = operand({ c.cout }, "f32")
  local name = ("%s %s %s -> %s"):format(dtype, transposed and "convT" or "conv", table.concat(xs, "x"),
    table.concat(ys, "x"))

  local y = filled(ys, dtype, NaN)
  ;(transposed and conv.T_fwd or conv.fwd)(x, w, (not c.nobias) and b or nil, y, opts)
  assert.are.equal(dtype, y.dtype)
  close(y, support.ref_fwd(xh, wh, not c.nobias and bh or nil, opts, transposed), name .. " forward", tol)

  local dx = filled(xs, dtype, NaN)
  ;(transposed and conv.T_bwd_data or conv.bwd_data)(dy, w, dx, opts)
  close(dx, support.ref_bwd_data(dyh, wh, xs, opts, transposed), name .. " backward data", tol)

  local bwd_weight = transposed and conv.T_bwd_weight or conv.bwd_weight
  local dw, db = filled(ws, "f32", NaN), filled({ c.cout }, "f32", NaN)
  bwd_weight(x, dy, dw, db, opts)
  local rdw, rdb = support.ref_bwd_weight(xh, dyh, ws, opts, transposed)
  close(dw, rdw, name .. " backward weight", wtol)
  close(db, rdb, name .. " backward bias", 1e-4)
  local dw1, db1 = filled(ws, "f32", 1), filled({ c.cout }, "f32", 1)
  bwd_weight(x, dy, dw1, db1, { k = opts.k, stride = opts.stride, accumulate = true })
  local one_w, one_b = {}, {}
  for i, v in ipairs(rdw:flat()) do one_w[i] = v + 1 end
  for i, v in ipairs(rdb:flat()) do one_b[i] = v + 1 end
  close(dw1, lunet.tensor(one_w, { shape = ws, dtype = "f64" }), name .. " accumulated weight", wtol)
  close(db1, lunet.tensor(one_b, { shape = { c.cout }, dtype = "f64" }), name .. " accumulated bias", 1e-4)
end

-- The outputs of every pass of case c (forward, backward data, backward weight and bias) on fixed operands
-- (the same for every call with the same case), as flat arrays: for comparisons between kernel variants.
local function all_passes(c, transposed, dtype)
  local xs = { c.n, c.cin, table.unpack(c.x) }
  local ws = weight_shape(c, transposed)
  local opts = transposed and { stride = c.stride } or { k = c.k, stride = c.stride }
  local ys = transposed and conv.T_out_shape(xs, c.cout, opts) or conv.out_shape(xs, c.cout, opts)
  local fixed = support.rand_stream(77)
  local x, dy = operand(xs, dtype, fixed(numel(xs))), operand(ys, dtype, fixed(numel(ys)))
  local w, b = operand(ws, "f32", fixed(numel(ws))), operand({ c.cout }, "f32", fixed(c.cout))
  local y, dx = filled(ys, dtype, NaN), filled(xs, dtype, NaN)
  local dw, db = filled(ws, "f32", NaN), filled({ c.cout }, "f32", NaN)
  ;(transposed and conv.T_fwd or conv.fwd)(x, w, b, y, opts)
  ;(transposed and conv.T_bwd_data or conv.bwd_data)(dy, w, dx, opts)
  ;(transposed and conv.T_bwd_weight or conv.bwd_weight)(x, dy, dw, db, opts)
  return { forward = y:flat(), ["backward data"] = dx:flat(), ["backward weight"] = dw:flat(), bias = db:flat() }
end

-- the case tables of conv_spec, less the one whose 160 x 260 weights make the emulation slow on PoCL
local function cases(list, emulated)
  local out = {}
  for _, c in ipairs(list) do
    if not (emulated and c.cin * c.cout > 20000) then out[#out + 1] = c end
  end
  return out
end

-- tf32 of a float32 value: round to nearest, ties away from zero, at 10 mantissa bits (cvt.rna.tf32.f32)
local function tf32(v)
  local u = string.unpack("<I4", string.pack("<f", v))
  u = ((u + 0x1000) & 0xffffe000) & 0xffffffff
  return (string.unpack("<f", string.pack("<I4", u)))
end

-- y = P x for a permutation P of 70 channels (not a multiple of any tile's rows) over 100 positions (nor of
-- its columns): with integer x below 2048 every product and sum is exact in f16, tf32 and f32, so any
-- misplaced A, B or C element shows as a wrong value, not as rounding.
local function permutation_check(dtypes)
  local C, P = 70, 100
  local perm = {}
  for i = 1, C do perm[i] = (i * 37) % C + 1 end -- a bijection of 1..C (37 is prime to 70)
  local wflat = {}
  for o = 1, C do
    for i = 1, C do wflat[(o - 1) * C + i] = perm[o] == i and 1 or 0 end
  end
  local xflat = {}
  for c = 1, C do
    for p = 1, P do xflat[(c - 1) * P + p] = ((c * 131 + p * 7) % 2000) - 1000 end
  end
  for _, dtype in ipairs(dtypes) do
    local x = lunet.tensor(xflat, { shape = { 1, C, 1, P }, dtype = dtype }):to_device()
    local w = lunet.tensor(wflat, { shape = { C, C, 1, 1 }, dtype = "f32" }):to_device()
    local y = filled({ 1, C, 1, P }, dtype, NaN)
    conv.fwd(x, w, nil, y, { k = 1 })
    local got = y:flat()
    for o = 1, C do
      for p = 1, P do
        local want = xflat[(perm[o] - 1) * P + p]
        local v = got[(o - 1) * P + p]
        if v ~= want then error(("%s: y[%d, %d] = %s, want x[%d, %d] = %s"):format(dtype, o, p, v, perm[o], p, want)) end
      end
    end
  end
end

describe("implicit-GEMM convolutions", function()
  before_each(function() core.tune.set("conv.igemm", 1) end)
  after_each(function() core.tune.reset() end)

  -- on an NVIDIA GPU that passed the probe, the inline-PTX fragments too
  local avail = conv.mma_available()
  local modes = { "fma", "emulate" }
  if avail.f16 and avail.tf32 then modes[#modes + 1] = "ptx" end
  for _, mma in ipairs(modes) do
    for _, dtype in ipairs({ "f32", "f16" }) do
      local emulated = mma ~= "fma" -- emulated or real fragments: f16 / tf32 operands
      local tol = (dtype == "f16" or emulated) and 2e-3 or 1e-4
      local wtol = (emulated and dtype == "f32") and 2e-3 or 1e-4
      it(("match the float64 reference on %s tiles with %s activations (every conv_spec geometry)"):format(mma, dtype),
        function()
          core.tune.set("conv.mma", mma)
          for _, c in ipairs(cases(support.conv_cases, emulated)) do check_case(c, false, dtype, tol, wtol) end
          for _, c in ipairs(cases(support.convT_cases, emulated)) do check_case(c, true, dtype, tol, wtol) end
        end)
    end
  end

  it("give the same results with the geometry as build options (GEOM_FIXED, the GPUs' choice)", function()
    core.tune.set("conv.igemm_fixed", 1)
    local picked = { support.conv_cases[2], support.conv_cases[3], support.convT_cases[1] }
    -- (the index arithmetic is the same macros under every micro-kernel: FMA tiles suffice here)
    for _, mode in ipairs({ { "fma", "f32", 1e-4, 1e-4 }, { "fma", "f16", 2e-3, 1e-4 } }) do
      core.tune.set("conv.mma", mode[1])
      for i, c in ipairs(picked) do check_case(c, i == 3, mode[2], mode[3], mode[4]) end
    end
  end)

  it("place every fragment element where PTX's layout puts it: permutation matrices through the emulated mma", function()
    core.tune.set("conv.mma", "emulate")
    permutation_check({ "f16", "f32" })
  end)

  it("run every work-group tile of conv.igemm_tile to the same results (FMA tiles on every pass, the emulated " ..
    "fragments on each warp layout)", function()
    local tiles = {}
    for i, name in ipairs(conv.igemm_tiles()) do
      if i <= 8 then tiles[i] = name end -- the rest are these with ldmatrix (the next spec)
    end
    assert.are.same({ "64x64", "128x64", "64x128", "128x128", "32x128", "32x64", "64x64k32", "128x128k32" }, tiles)
    -- partial tiles along M, N and K: 33 output channels, and a transposed conv, taking turns (what a tile
    -- changes, the gather into local memory and the split of K, is shared by every pass)
    for i, tile in ipairs(tiles) do
      core.tune.set("conv.igemm_tile", tile)
      core.tune.set("conv.mma", "fma")
      if i % 2 == 1 then check_case(support.conv_cases[10], false, "f32", 1e-4, 1e-4)
      else check_case(support.convT_cases[1], true, "f32", 1e-4, 1e-4) end
    end
    -- the emulated fragments (f16) on the layouts that differ from the default: 4 x 2 and 1 x 4 warps, 4 x 4
    -- fragments per warp, 32-deep slices (the passes differ only in what they gather and where they store,
    -- which the FMA tiles above check per tile; the fragments' placement is the forward's permutation)
    core.tune.set("conv.mma", "emulate")
    for _, tile in ipairs({ "128x64", "32x128", "128x128", "64x64k32" }) do
      core.tune.set("conv.igemm_tile", tile)
      permutation_check({ "f16" })
    end
  end)

  it("read f16 fragments by ldmatrix (the \"l\" tiles, emulated): the same bits as 32-bit loads on every pass", function()
    local tiles = conv.igemm_tiles()
    assert.are.equal(16, #tiles)
    for i = 1, 8 do assert.are.equal(tiles[i] .. "l", tiles[i + 8]) end
    core.tune.set("conv.mma", "emulate")
    -- the warp layouts that address differently: 2 x 2 warps of 2 x 4 fragments, 1 x 4 warps, 32-deep slices
    -- (two k steps per slice); a conv with partial tiles along M, N and K, and a transposed conv
    for _, tile in ipairs({ "64x64", "32x128", "64x64k32" }) do
      for _, case in ipairs({ { support.conv_cases[10], false }, { support.convT_cases[1], true } }) do
        core.tune.set("conv.igemm_tile", tile)
        local want = all_passes(case[1], case[2], "f16")
        core.tune.set("conv.igemm_tile", tile .. "l")
        local got = all_passes(case[1], case[2], "f16")
        for pass, w in pairs(want) do
          assert.are.equal(#w, #got[pass])
          for i = 1, #w do
            if w[i] ~= got[pass][i] then
              error(("%s %s %s: element %d: %s with ldmatrix, %s without"):format(tile, case[2] and "convT" or "conv",
                pass, i, got[pass][i], w[i]))
            end
          end
        end
      end
      core.tune.set("conv.igemm_tile", tile .. "l")
      permutation_check({ "f16" })
    end
    -- the tuner times the "l" tiles of f16 fragments next to their twins
    core.tune.set("conv.igemm_tile", nil)
    local c = support.conv_cases[2]
    local xs = { c.n, c.cin, table.unpack(c.x) }
    local x, w = operand(xs, "f16"), operand(support.weight_shape(c), "f32")
    local y = filled(conv.out_shape(xs, c.cout, { k = c.k }), "f16", 0)
    local r = require("lunet.tuner").tune_igemm({ step = function() conv.fwd(x, w, nil, y, { k = c.k }) end,
      tiles = { "32x64", "32x64l" }, repeats = 1, save = false })
    assert.are.equal(1, #r.results)
    assert.matches("^fwd%.emu16%-hh%.", r.results[1].key)
    assert.is_number(r.results[1].times["32x64"])
    assert.is_number(r.results[1].times["32x64l"])
    -- kernels without f16 fragments run the twin: float32 activations (tf32) and the FMA tiles
    core.tune.set("conv.igemm_tile", "32x64l")
    for _, mma in ipairs({ "emulate", "fma" }) do
      core.tune.set("conv.mma", mma)
      conv.igemm_record(true)
      check_case(support.conv_cases[10], false, "f32", mma == "fma" and 1e-4 or 2e-3, mma == "fma" and 1e-4 or 2e-3)
      local ran = conv.igemm_record(false)
      assert.is_true(#ran > 0)
      for _, r in ipairs(ran) do
        assert.are.equal("32x64", r.tile, r.key)
        assert.is_false(r.ldmatrix, r.key) -- (the tuner skips the "l" tiles for these)
      end
    end
  end)

  it("takes each GEMM's tile from conv.igemm_tile@<key>, under a plain setting of conv.igemm_tile", function()
    core.tune.set("conv.mma", "fma")
    local c = support.conv_cases[10] -- M = 33: the rule's 64 x 64
    local rule = {}
    local function tiles_run()
      conv.igemm_record(true)
      check_case(c, false, "f16", 2e-3, 1e-4)
      local got = {}
      for _, r in ipairs(conv.igemm_record(false)) do got[r.key], rule[r.key] = r.tile, r.rule end
      return got
    end
    local ran = tiles_run()
    local fwd_key = "fwd.fma-hh.33x420x459" -- Cout x (batch x positions) x (Cin x taps)
    assert.are.equal("64x64", ran[fwd_key])
    -- forward, backward data (M = Cin = 17: 32 x 128) and weight gradient: three GEMM shapes on the rule
    local n = 0
    for key, tile in pairs(ran) do
      n = n + 1
      assert.are.equal(rule[key], tile, key)
    end
    assert.are.equal(3, n)
    assert.are.equal("32x128", ran["dgrad.fma-hh.17x420x891"])
    core.tune.set("conv.igemm_tile@" .. fwd_key, "128x64")
    ran = tiles_run() -- (check_case proves the results right with it)
    assert.are.equal("128x64", ran[fwd_key])
    assert.are.equal("128x64", core.tune.get("conv.igemm_tile@" .. fwd_key))
    for key, tile in pairs(ran) do
      if key ~= fwd_key then assert.are.equal(rule[key], tile, key) end
    end
    core.tune.set("conv.igemm_tile", "32x64") -- a plain run-time setting wins over every key
    ran = tiles_run()
    for key, tile in pairs(ran) do assert.are.equal("32x64", tile, key) end
    core.tune.set("conv.igemm_tile", nil)
    assert.are.equal("128x64", tiles_run()[fwd_key])
    -- the rule: 32 x 128 where M <= 32 (the 32-channel stages)
    conv.igemm_record(true)
    check_case(support.conv_cases[1], false, "f32", 1e-4, 1e-4)
    for _, r in ipairs(conv.igemm_record(false)) do
      local M = tonumber(r.key:match("%.(%d+)x%d+x%d+$"))
      assert.are.equal(M <= 32 and "32x128" or "64x64", r.tile, r.key)
      assert.are.equal(r.tile, r.rule)
    end
    -- keys are checked
    assert.has_error(function() core.tune.set("conv.igemm_tile@a b", 1) end)
    assert.has_error(function() core.tune.set("conv.igemm_tile@", 1) end)
    assert.has_error(function() core.tune.set("conv.igemm_tile@fwd", "96x96") end)
  end)

  it("read a concatenated input in place (the decoder's upsampled map and skip): the same bits as the passes on " ..
    "the concatenation", function()
    local function same(a, b, what)
      local fa, fb = a:flat(), b:flat()
      assert.are.equal(#fa, #fb)
      for i = 1, #fa do
        if fa[i] ~= fb[i] then error(("%s: element %d: %s vs %s"):format(what, i, fa[i], fb[i])) end
      end
    end
    -- 2 + 3-D cases: parts of 5 and 7 channels (a tile boundary inside neither), stride 1, 3-tap kernels
    for _, c in ipairs({ { n = 2, x = { 5, 6, 7 }, k = 3 }, { n = 3, x = { 9, 11 }, k = 3 } }) do
      for _, mode in ipairs({ { "fma", "f32" }, { "fma", "f16" }, { "emulate", "f16" }, { "off", "f32" } }) do
        core.tune.set("conv.igemm", mode[1] == "off" and 0 or 1)
        if mode[1] ~= "off" then core.tune.set("conv.mma", mode[1]) end
        local dt = mode[2]
        local s1, s2, sc = { c.n, 5, table.unpack(c.x) }, { c.n, 7, table.unpack(c.x) }, { c.n, 12, table.unpack(c.x) }
        local f1, f2 = rand_flat(numel(s1)), rand_flat(numel(s2))
        -- the concatenation, built on the host: per batch item the 5 channels of x1, then the 7 of x2
        local fc, per1, per2 = {}, numel(s1) // c.n, numel(s2) // c.n
        for b = 0, c.n - 1 do
          for i = 1, per1 do fc[#fc + 1] = f1[b * per1 + i] end
          for i = 1, per2 do fc[#fc + 1] = f2[b * per2 + i] end
        end
        local x1, x2 = operand(s1, dt, f1), operand(s2, dt, f2)
        local xc = operand(sc, dt, fc)
        local ws = { 4, 12 }
        for _ = 1, #c.x do ws[#ws + 1] = c.k end
        local w, b = operand(ws, "f32"), operand({ 4 }, "f32")
        local opts = { k = c.k }
        local ys = conv.out_shape(sc, 4, opts)
        local what = ("%s %s %s"):format(mode[1], dt, table.concat(sc, "x"))
        assert.are.equal(mode[1] ~= "off" or dt == "f16", conv.cat_in_place(dt))
        local y1, y2 = filled(ys, dt, NaN), filled(ys, dt, NaN)
        conv.fwd_cat(x1, x2, w, b, y1, opts)
        conv.fwd(xc, w, b, y2, opts)
        same(y1, y2, what .. " forward")
        local dy = operand(ys, dt)
        local d1, d2, dcat = filled(s1, dt, NaN), filled(s2, dt, NaN), filled(sc, dt, NaN)
        conv.bwd_data_cat(dy, w, d1, d2, opts)
        conv.bwd_data(dy, w, dcat, opts)
        local got, gc = {}, dcat:flat()
        local g1, g2 = d1:flat(), d2:flat()
        for bi = 0, c.n - 1 do
          for i = 1, per1 do got[#got + 1] = g1[bi * per1 + i] end
          for i = 1, per2 do got[#got + 1] = g2[bi * per2 + i] end
        end
        for i = 1, #gc do
          if got[i] ~= gc[i] then error(("%s backward data: element %d: %s vs %s"):format(what, i, got[i], gc[i])) end
        end
        local dw1, dw2 = filled(ws, "f32", NaN), filled(ws, "f32", NaN)
        local db1, db2 = filled({ 4 }, "f32", NaN), filled({ 4 }, "f32", NaN)
        conv.bwd_weight_cat(x1, x2, dy, dw1, db1, opts)
        conv.bwd_weight(xc, dy, dw2, db2, opts)
        same(dw1, dw2, what .. " backward weight")
        same(db1, db2, what .. " backward bias")
      end
    end
    -- parts that do not fit together are named
    local a = filled({ 1, 2, 4, 4 }, "f32", 0)
    local bad = filled({ 1, 2, 4, 5 }, "f32", 0)
    local w = filled({ 3, 4, 3, 3 }, "f32", 0)
    local y = filled({ 1, 3, 4, 4 }, "f32", 0)
    local ok, err = pcall(conv.fwd_cat, a, bad, w, nil, y)
    assert.is_false(ok)
    assert.matches("input parts differ in dimension 3", tostring(err))
  end)

  it("is tuned per GEMM shape: lunet.tuner times each recorded GEMM on every tile and keeps the fastest", function()
    core.tune.set("conv.mma", "fma")
    local c = support.conv_cases[6]
    local xs = { c.n, c.cin, table.unpack(c.x) }
    local x = operand(xs, "f16")
    local w = operand(support.weight_shape(c), "f32")
    local ys = conv.out_shape(xs, c.cout, { k = c.k })
    local y, dy, dx = filled(ys, "f16", 0), operand(ys, "f16"), filled(xs, "f16", 0)
    local dw = filled(support.weight_shape(c), "f32", 0)
    local lines = {}
    local r = require("lunet.tuner").tune_igemm({
      step = function()
        conv.fwd(x, w, nil, y, { k = c.k })
        conv.bwd_data(dy, w, dx, { k = c.k })
        conv.bwd_weight(x, dy, dw, nil, { k = c.k })
      end,
      tiles = { "64x64", "32x64", "128x128", "64x64l" }, repeats = 1, save = false, -- (no ldmatrix on FMA tiles)
      log = function(l) lines[#lines + 1] = l end,
    })
    assert.are.equal(3, #r.results)
    for _, e in ipairs(r.results) do
      assert.truthy(e.times["64x64"] and e.times["32x64"] and e.times["128x128"], e.key)
      for _, t in pairs(e.times) do assert.is_true(t > 0 and t < 10) end
      assert.are.equal(e.best, core.tune.get("conv.igemm_tile@" .. e.key))
      local fastest = math.huge
      for _, t in pairs(e.times) do fastest = math.min(fastest, t) end
      assert.are.equal(fastest, e.times[e.best])
      assert.is_nil(e.times["64x64l"])
    end
    assert.are.equal(3, #lines)
    -- a workload without implicit GEMMs is an error that says why
    core.tune.set("conv.igemm", 0)
    local ok, err = pcall(require("lunet.tuner").tune_igemm, { step = function() conv.fwd(x, w, nil, y, { k = c.k }) end, save = false })
    assert.is_false(ok)
    assert.matches("ran no implicit%-GEMM convolution", err)
  end)

  it("rounds operands as the tensor cores do: weights to f16 (RNE) for float16 activations, to tf32 (RNA) otherwise", function()
    core.tune.set("conv.mma", "emulate")
    local third = 1 / 3
    local w = lunet.tensor({ third }, { shape = { 1, 1, 1, 1 }, dtype = "f32" }):to_device()
    local xs = { 1, 1, 1, 5 }
    local xflat = { 1, 3, -7, 96, 1024 }
    -- float32 activations: y = tf32(w) x exactly (integers < 2^11 are exact in tf32; the product in f32)
    local x32 = lunet.tensor(xflat, { shape = xs, dtype = "f32" }):to_device()
    local y32 = filled(xs, "f32", NaN)
    conv.fwd(x32, w, nil, y32, { k = 1 })
    local wt = tf32(third)
    assert.are_not.equal(third, wt)
    local rounded32 = lunet.tensor({ third }, { dtype = "f32" }):flat()[1]
    for i, v in ipairs(y32:flat()) do
      local want = lunet.tensor({ wt * xflat[i] }, { dtype = "f32" }):flat()[1]
      assert.are.equal(want, v)
      if xflat[i] ~= 0 then assert.are_not.equal(rounded32 * xflat[i], v) end
    end
    -- float16 activations: y = f16(f16(w) x)
    local x16 = lunet.tensor(xflat, { shape = xs, dtype = "f16" }):to_device()
    local y16 = filled(xs, "f16", NaN)
    conv.fwd(x16, w, nil, y16, { k = 1 })
    local wh = lunet.tensor({ third }, { dtype = "f16" }):flat()[1]
    for i, v in ipairs(y16:flat()) do
      assert.are.equal(lunet.tensor({ wh * xflat[i] }, { dtype = "f16" }):flat()[1], v)
    end
  end)

  it("probes the tensor cores only where they can exist", function()
    -- a CPU device (PoCL) says no without trying; a GPU answers from its probe
    if lunet.devices()[1].type ~= "gpu" then assert.are.same({ f16 = false, tf32 = false, ldmatrix = false }, avail) end
  end)

  it("is what float16 activations take on GPUs; elsewhere (and with conv.igemm = 0) they go through float32 copies",
    function()
      -- the float32 strategies on float16 tensors: each pass converts on the way in and out, same results
      core.tune.set("conv.igemm", 0)
      for _, c in ipairs({ support.conv_cases[2], support.conv_cases[6], support.convT_cases[1] }) do
        check_case(c, c == support.convT_cases[1], "f16", 2e-3, 1e-4)
      end
      -- weights stay float32 masters on every path
      local x = lunet.tensor(rand_flat(2 * 3 * 36), { shape = { 2, 3, 6, 6 }, dtype = "f16" }):to_device()
      local w16 = lunet.tensor(rand_flat(4 * 3 * 9), { shape = { 4, 3, 3, 3 }, dtype = "f16" }):to_device()
      local y = filled({ 2, 4, 6, 6 }, "f16", NaN)
      for _, v in ipairs({ 0, 1 }) do
        core.tune.set("conv.igemm", v)
        assert.has_error(function() conv.fwd(x, w16, nil, y) end)
      end
    end)

  it("assembles its inline PTX (mma.sync, ldmatrix) for sm_80 and sm_90 where clang and CUDA's ptxas are installed", function()
    local common = require "spec.support.common"
    -- (without the sanitizer runtime a spec target may preload: it is for Lunet, not for clang and ptxas)
    local ok, out, code = common.run("env -u LD_PRELOAD sh scripts/ptx-check.sh")
    if code == 77 then
      pending("no clang or ptxas here: " .. out)
      return
    end
    assert(ok, out)
    assert.matches("36 kernels assembled", out) -- 6 passes x (f16, f16 with ldmatrix, tf32) x (sm_80, sm_90)
  end)
end)
