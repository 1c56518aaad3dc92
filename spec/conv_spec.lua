-- Convolutions and transposed convolutions on the device against a naive double-precision host
-- reference (lunet.testing's conv_ref through spec/support/conv.lua, plain loops over every tap), and their gradients against central
-- finite differences. Every output is poisoned with NaN before the op runs, so an element the op
-- forgets to write fails the comparison.
local lunet = require "lunet"
local core = require "lunet.core"
local conv = core.conv
local support = require "spec.support.conv"

local NaN = 0 / 0

local numel, rand_flat = support.numel, support.rand_stream(12345)

local function host(flat, shape) return lunet.tensor(flat, { shape = shape, dtype = "f32" }) end
local function dev(flat, shape) return host(flat, shape):to_device() end
local function poisoned(shape)
  local t = {}
  for i = 1, numel(shape) do t[i] = NaN end
  return dev(t, shape)
end
local function const(shape, v)
  local t = {}
  for i = 1, numel(shape) do t[i] = v end
  return dev(t, shape)
end

local close = support.close

local weight_shape = support.weight_shape

-- Runs forward, backward data and backward weight (+ bias) of case c and compares all of them.
local function check_case(c, transposed)
  local xs = { c.n, c.cin, table.unpack(c.x) }
  local ws = weight_shape(c, transposed)
  local opts = transposed and { stride = c.stride } or { k = c.k, stride = c.stride }
  local ys = transposed and conv.T_out_shape(xs, c.cout, opts) or conv.out_shape(xs, c.cout, opts)
  local xh, wh, bh = host(rand_flat(numel(xs)), xs), host(rand_flat(numel(ws)), ws), host(rand_flat(c.cout), { c.cout })
  local dyh = host(rand_flat(numel(ys)), ys)
  local x, w, b, dy = xh:to_device(), wh:to_device(), bh:to_device(), dyh:to_device()
  local name = (transposed and "convT " or "conv ") .. table.concat(xs, "x") .. " -> " .. table.concat(ys, "x")

  local fwd = transposed and conv.T_fwd or conv.fwd
  local bwd_data = transposed and conv.T_bwd_data or conv.bwd_data
  local bwd_weight = transposed and conv.T_bwd_weight or conv.bwd_weight

  local y = poisoned(ys)
  fwd(x, w, (not c.nobias) and b or nil, y, opts)
  close(y, support.ref_fwd(xh, wh, not c.nobias and bh or nil, opts, transposed), name .. " forward")

  local dx = poisoned(xs)
  bwd_data(dy, w, dx, opts)
  close(dx, support.ref_bwd_data(dyh, wh, xs, opts, transposed), name .. " backward data")

  local dw, db = poisoned(ws), poisoned({ c.cout })
  bwd_weight(x, dy, dw, db, opts)
  local rdw, rdb = support.ref_bwd_weight(xh, dyh, ws, opts, transposed)
  close(dw, rdw, name .. " backward weight")
  close(db, rdb, name .. " backward bias")

  -- accumulate adds into what is there: starting from 1, the result is 1 + grad
  local dw1, db1 = const(ws, 1), const({ c.cout }, 1)
  bwd_weight(x, dy, dw1, db1, { k = opts.k, stride = opts.stride, accumulate = true })
  local one_w, one_b = {}, {}
  for i, v in ipairs(rdw:flat()) do one_w[i] = v + 1 end
  for i, v in ipairs(rdb:flat()) do one_b[i] = v + 1 end
  close(dw1, lunet.tensor(one_w, { shape = ws, dtype = "f64" }), name .. " accumulated weight")
  close(db1, lunet.tensor(one_b, { shape = { c.cout }, dtype = "f64" }), name .. " accumulated bias")
end

-- Runs every case (transposed convs if `transposed`) with each setting of a kernel switch such as support.set_fwd.
local function check_each_mode(set, modes, cases, transposed)
  for _, mode in ipairs(modes) do
    set(mode)
    for _, c in ipairs(cases) do check_case(c, transposed or false) end
  end
end

-- Runs every case on a row kernel (set(mode, chunk, rows), e.g. support.set_wino) in chunks of 3 input
-- channels, whose partial sums are taken from the output, with 1 and with 3 rows per work-item.
local function check_chunks_and_rows(set, mode, cases)
  for _, rows in ipairs({ 1, 3 }) do
    set(mode, 3, rows)
    for _, c in ipairs(cases) do check_case(c, false) end
  end
end

-- the geometries every conv strategy is checked on (spec/support/conv.lua)
local conv_cases, convT_cases = support.conv_cases, support.convT_cases

describe("conv", function()
  after_each(function()
    core.tune.reset() -- every tunable a test forced goes back to the device's own
  end)

  it("computes output shapes and flops as nnU-Net's same-padded conv", function()
    assert.same({ 2, 8, 32, 32, 32 }, conv.out_shape({ 2, 4, 64, 64, 64 }, 8, { k = 3, stride = 2 }))
    assert.same({ 2, 8, 64, 32, 31 }, conv.out_shape({ 2, 4, 64, 64, 61 }, 8, { k = { 1, 3, 3 }, stride = { 1, 2, 2 } }))
    assert.same({ 1, 3, 10, 12 }, conv.T_out_shape({ 1, 5, 5, 6 }, 3, { stride = 2 }))
    assert.equal(2 * 2 * 8 * 4 * 27 * 32 ^ 3, conv.flops({ 2, 4, 64, 64, 64 }, 8, { k = 3, stride = 2 }))
  end)

  for _, c in ipairs(conv_cases) do
    it(("matches the reference, %d-D k=%s s=%s N=%d Cin=%d Cout=%d"):format(#c.x, table.concat(c.k, ""),
      table.concat(c.stride, ""), c.n, c.cin, c.cout), function() check_case(c, false) end)
  end

  it("runs wgrad_cvec with all taps of a position at once and one tap at a time alike", function()
    -- >= 12 output and >= 8 input channels (wgrad_cvec): channel counts off the 32-channel blocks and
    -- the 4-channel input blocks, stride 1 and 2, 1 and 3 taps, 2-D and 3-D, batch > 1, rows of one to
    -- three dy tiles (transpose_dy's partial tiles); then x read in place (a 16 KiB workspace leaves no
    -- room for the padded copy: the first and last positions of a row test their taps) with chunks of
    -- 32 positions (partial sums reduced); and transposed convs (2 taps, stride 2, no padding)
    local cases = {
      { n = 2, cin = 9, cout = 18, x = { 5, 9, 11 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
      { n = 1, cin = 8, cout = 40, x = { 12, 13 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 2, cin = 10, cout = 13, x = { 9, 14 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 2, cin = 12, cout = 33, x = { 3, 4, 37 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
      { n = 1, cin = 11, cout = 16, x = { 4, 3, 20 }, k = { 3, 1, 3 }, stride = { 2, 1, 1 } },
      { n = 2, cin = 8, cout = 12, x = { 3, 66 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 9, cout = 14, x = { 4, 3, 5 }, k = { 1, 1, 1 }, stride = { 1, 1, 1 } },
    }
    local transposed = {
      { n = 2, cin = 14, cout = 9, x = { 3, 4, 5 }, stride = { 2, 2, 2 } },
      { n = 1, cin = 20, cout = 8, x = { 5, 33 }, stride = { 1, 2 } },
    }
    for _, mode in ipairs({ "taps", "per_tap" }) do
      support.set_wgrad(mode)
      for _, c in ipairs(cases) do check_case(c, false) end
      for _, c in ipairs(transposed) do check_case(c, true) end
      support.set_wgrad(mode, 32)
      support.set_workspace_kb(16)
      for _, c in ipairs(cases) do check_case(c, false) end
      support.set_workspace_kb(0)
    end
  end)

  it("runs stride-1 3-tap rows on conv_rows and conv_direct alike (forward and backward data)", function()
    -- rows of exactly 16 and 32, a partial last vector, an odd row count (half-empty last row block),
    -- 3-D with 3 and 1 taps along z and y, channel counts off the 8-channel blocks, batch > 1 (the first
    -- and last work-items of a buffer take the bounds-checked path)
    local cases = {
      { n = 2, cin = 3, cout = 5, x = { 5, 16 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 4, cout = 9, x = { 4, 32 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 3, cin = 2, cout = 16, x = { 7, 21 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 2, cin = 5, cout = 7, x = { 3, 6, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 3, cout = 4, x = { 4, 5, 18 }, k = { 1, 3, 3 }, stride = { 2, 1, 1 } },
      { n = 1, cin = 3, cout = 6, x = { 3, 4, 17 }, k = { 3, 1, 3 }, stride = { 1, 1, 1 } },
    }
    support.set_wino("direct") -- rows >= 32 wide and a multiple of 16 would run on conv_wino
    check_each_mode(support.set_fwd, { "rows", "direct" }, cases)
    -- conv_rows in chunks of 2 input channels, each sweep taking the channel blocks' partial sums from
    -- the output: a partial last chunk, the bounds-checked first and last channels inside chunks,
    -- partial x-vectors and row blocks, a partial last channel block
    support.set_fwd("rows", 2)
    for _, c in ipairs(cases) do check_case(c, false) end
    check_case({ n = 2, cin = 7, cout = 19, x = { 9, 35 }, k = { 3, 3 }, stride = { 1, 1 }, nobias = true }, false)
    -- and in groups of 3 row blocks per work-item: groups across planes, a partial last group
    support.set_fwd("rows", 2, 3)
    for _, c in ipairs(cases) do check_case(c, false) end
    -- weights packed and read in place (forward, and backward data flipped; a partial last channel
    -- block shifted back), whatever the layer's size
    local blocks = {
      { n = 2, cin = 5, cout = 19, x = { 6, 17 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 3, cout = 8, x = { 3, 4, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 11, cout = 9, x = { 5, 18 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 8, cout = 10, x = { 3, 3, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
    }
    for _, in_place in ipairs({ 0, 1 }) do
      support.set_fwd("rows", 2, nil, in_place)
      for _, c in ipairs(cases) do check_case(c, false) end
      for _, c in ipairs(blocks) do check_case(c, false) end
    end
    support.set_wino()
  end)

  it("runs 3x3 and 3x3x3 stride-1 convolutions by Winograd F(2,3) along x (forward and backward data)", function()
    -- rows of 32 (one work-item: both neighbours zero padding), 64 and 96 (work-items with a left, a
    -- right and both neighbours), 48 and 80 (a last work-item of 16 outputs), odd and even row counts (a
    -- half-empty last pair of rows), 1 to 3 rows, channel counts off the 4-channel blocks and below one,
    -- 1x3x3 kernels of a 3-D conv (planes), 3x3x3 kernels (first and last planes, a single plane), 3x3x3
    -- over rows of 16 (two rows per vector: odd and even row counts, a single row), batch > 1, no bias;
    -- then chunks of 3 input channels (a partial last chunk) and 1 and 3 rows per work-item
    local cases = {
      { n = 2, cin = 3, cout = 5, x = { 5, 32 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 1, cout = 4, x = { 1, 64 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 3, cin = 7, cout = 9, x = { 4, 96 }, k = { 3, 3 }, stride = { 1, 1 }, nobias = true },
      { n = 1, cin = 5, cout = 11, x = { 2, 64 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 2, cin = 4, cout = 6, x = { 3, 3, 32 }, k = { 1, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 5, cout = 8, x = { 3, 48 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 3, cout = 4, x = { 5, 80 }, k = { 3, 3 }, stride = { 1, 1 }, nobias = true },
      { n = 1, cin = 3, cout = 5, x = { 3, 4, 32 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 6, cout = 4, x = { 4, 3, 48 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 1, cin = 4, cout = 7, x = { 1, 2, 64 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 6, cout = 8, x = { 2, 5, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 1, cin = 5, cout = 4, x = { 3, 1, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 1, cin = 3, cout = 6, x = { 2, 8, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 }, nobias = true },
      { n = 2, cin = 4, cout = 5, x = { 3, 5, 16 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
    }
    check_each_mode(support.set_wino, { "wino" }, cases)
    check_chunks_and_rows(support.set_wino, "wino", cases)
    support.set_wino()
  end)

  it("runs 3x3 and 3x3x3 stride-1 convolutions by Winograd tiles: F(2x2) over (y, x), F(2x2x2) over (z, y, x), F(4x4) over (y, x) (forward and backward data)", function()
    -- rows of 32, 56 and 28 (a last work-item of 24 or 28 outputs: loads and stores masked at the row's
    -- end), 80 (a last work-item of 16), 7 (one partial vector), odd and even row and plane counts (a
    -- half-empty last pair), a single plane and a single row, 1x3x3 kernels of a 3-D conv, channel counts
    -- off the 4- and 6-channel blocks, batch > 1, no bias; each case on each tile kind, then
    -- in chunks of 3 input channels (a partial last chunk, partial sums taken from the output) with 6
    -- channels per block
    local cases = {
      { n = 2, cin = 9, cout = 5, x = { 5, 32 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 8, cout = 11, x = { 4, 56 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 10, cout = 6, x = { 3, 28 }, k = { 3, 3 }, stride = { 1, 1 }, nobias = true },
      { n = 2, cin = 5, cout = 4, x = { 2, 7 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 4, cout = 7, x = { 6, 80 }, k = { 3, 3 }, stride = { 1, 1 } },
      { n = 1, cin = 8, cout = 5, x = { 3, 5, 56 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 2, cin = 9, cout = 7, x = { 4, 4, 32 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 1, cin = 8, cout = 9, x = { 1, 3, 40 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 }, nobias = true },
      { n = 1, cin = 5, cout = 4, x = { 5, 1, 24 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
      { n = 1, cin = 8, cout = 6, x = { 3, 3, 36 }, k = { 1, 3, 3 }, stride = { 1, 1, 1 } },
    }
    -- F(4x4): also rows of 64 and 120 (whole and partial last work-items of 64), row counts off the 4-row blocks;
    -- rows of at most 32 put 2 blocks side by side in a vector (the 32-, 28-, 24- and 7-wide cases above),
    -- rows of at most 16 put 4 (16 and 14 wide here: 35 rows, a last block of one partial group, and 1x3x3
    -- kernels over 3 planes)
    for _, mode in ipairs({ "2d", "3d", "4x4" }) do
      if mode == "4x4" then
        cases[#cases + 1] = { n = 2, cin = 8, cout = 5, x = { 9, 64 }, k = { 3, 3 }, stride = { 1, 1 } }
        cases[#cases + 1] = { n = 1, cin = 9, cout = 6, x = { 2, 6, 120 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } }
        cases[#cases + 1] = { n = 1, cin = 8, cout = 6, x = { 35, 16 }, k = { 3, 3 }, stride = { 1, 1 } }
        cases[#cases + 1] = { n = 2, cin = 9, cout = 5, x = { 3, 9, 14 }, k = { 1, 3, 3 }, stride = { 1, 1, 1 } }
      end
      support.set_wino_tile(mode)
      for _, c in ipairs(cases) do check_case(c, false) end
      support.set_wino_tile(mode, 3, 6)
      for _, c in ipairs(cases) do check_case(c, false) end
    end
    -- each tile kind with 3 blocks of rows per work-item (a partial last block, blocks past the map) and the
    -- channel blocks split between 2 and 3 work-items (groups of unequal size, a group of one block)
    local blocked = { cases[1], cases[2], cases[5], cases[6], cases[7], cases[#cases - 3], cases[#cases - 2],
      cases[#cases - 1], cases[#cases] }
    for _, mode in ipairs({ "2d", "3d", "4x4" }) do
      support.set_wino_tile(mode, 3, 4)
      for _, split in ipairs({ { 3, 2 }, { 2, 3 } }) do
        core.tune.set("conv.wino_t4_rb", split[1])
        core.tune.set("conv.wino_t4_cbg", split[2])
        for _, c in ipairs(blocked) do check_case(c, false) end
      end
    end
    -- rows of 1024 in 8 blocks of 4 rows per work-item: 16 work-items per group, whose transformed inputs
    -- (chunks of 64 channels by the 2-D rule) would outgrow a PoCL worker's stack unless the chunk shrinks
    support.set_wino_tile("4x4")
    core.tune.set("conv.wino_t4_rb", 8)
    check_case({ n = 1, cin = 64, cout = 4, x = { 33, 1024 }, k = { 3, 3 }, stride = { 1, 1 } }, false)
    core.tune.set("conv.wino_t4_rb", nil)
    core.tune.set("conv.wino_t4_cbg", nil)
    support.set_wino_tile()
  end)

  it("runs stride-2 forwards on conv_s2rows and conv_direct alike", function()
    -- rows of 32, 64 and 96 (work-items with and without a left neighbour), odd and even output row
    -- counts (a half-empty last pair of rows), odd input rows (the last output row's third input row off
    -- the plane), 3x3x3 kernels of stride 2 and (1, 2, 2), 1x3x3 of stride (1, 2, 2), channel counts off
    -- the 16-channel blocks, batch > 1, no bias; then chunks of 3 input channels and 1 and 3 rows per
    -- work-item
    local cases = {
      { n = 1, cin = 3, cout = 5, x = { 6, 32 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 2, cin = 4, cout = 17, x = { 7, 64 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 1, cin = 7, cout = 20, x = { 9, 96 }, k = { 3, 3 }, stride = { 2, 2 }, nobias = true },
      { n = 2, cin = 3, cout = 5, x = { 4, 6, 32 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
      { n = 1, cin = 5, cout = 18, x = { 3, 5, 64 }, k = { 3, 3, 3 }, stride = { 1, 2, 2 } },
      { n = 1, cin = 3, cout = 4, x = { 3, 6, 32 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
    }
    check_each_mode(support.set_s2rows, { "s2rows", "direct" }, cases)
    check_chunks_and_rows(support.set_s2rows, "s2rows", cases)
    support.set_s2rows()
  end)

  it("runs strided backward data on dgrad_rows and by phases alike", function()
    -- every stride-2 case above plus rows of one and two dy vectors: odd and even dx extents (the last
    -- odd column and row have no dy to their right / below), z of stride 2, stride 1 and 1 tap, channel
    -- counts off the 4-channel blocks, batch > 1 (the last channels take the lane-by-lane loads)
    local cases = {
      { n = 2, cin = 5, cout = 3, x = { 7, 33 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 1, cin = 6, cout = 4, x = { 6, 64 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 1, cin = 3, cout = 2, x = { 9, 53 }, k = { 3, 3 }, stride = { 2, 2 } },
      { n = 2, cin = 7, cout = 3, x = { 3, 5, 40 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
      { n = 2, cin = 3, cout = 5, x = { 4, 5, 34 }, k = { 3, 3, 3 }, stride = { 1, 2, 2 } },
      { n = 1, cin = 5, cout = 2, x = { 5, 6, 34 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
    }
    for _, c in ipairs(conv_cases) do
      if c.stride[#c.stride] == 2 and c.stride[#c.stride - 1] == 2 then cases[#cases + 1] = c end
    end
    check_each_mode(support.set_dgrad, { "rows", "phases" }, cases)
    -- the phases with their channel blocks as the slowest work-item index (weights over 2 MB)
    support.set_dgrad("phases", 1)
    for _, c in ipairs(cases) do check_case(c, false) end
  end)

  it("runs transposed conv backward data on convT_dgrad and as a strided conv alike", function()
    -- rows of >= 8 dx positions: 16-position blocks (2 dy vectors) with a partial last one, 8-position
    -- blocks (one dy vector, rows 8-15 wide), stride 1 along x (16 lanes, no pair sums), 2 kernel planes,
    -- dx channel counts off the 4-channel blocks and below them, odd dx heights (1-row blocks)
    local cases = {
      { n = 2, cin = 9, cout = 5, x = { 4, 20 }, stride = { 2, 2 } },
      { n = 1, cin = 6, cout = 3, x = { 3, 2, 9 }, stride = { 2, 2, 2 } },
      { n = 2, cin = 5, cout = 4, x = { 2, 5, 17 }, stride = { 1, 2, 1 } },
      { n = 1, cin = 3, cout = 7, x = { 3, 12 }, stride = { 2, 2 } },
      { n = 2, cin = 7, cout = 2, x = { 2, 4, 33 }, stride = { 1, 2, 2 } },
    }
    check_each_mode(support.set_convT_dgrad, { "lanes", "conv" }, cases, true)
  end)

  it("runs transposed conv forwards on convT_rows and convT_cvec alike", function()
    -- rows of >= 8 input positions: 16-input blocks (2 output vectors) with a partial last one, 8-input
    -- blocks (one vector), stride 1 along x (16 lanes of 16 inputs), 2 kernel planes (4 output rows per
    -- input row), output channel counts off the channel blocks (a last block overlapping the one before),
    -- no bias
    local cases = {
      { n = 2, cin = 9, cout = 5, x = { 4, 20 }, stride = { 2, 2 } },
      { n = 1, cin = 6, cout = 6, x = { 3, 2, 9 }, stride = { 2, 2, 2 } },
      { n = 2, cin = 5, cout = 4, x = { 2, 5, 17 }, stride = { 1, 2, 1 } },
      { n = 1, cin = 3, cout = 7, x = { 3, 12 }, stride = { 2, 2 }, nobias = true },
      { n = 2, cin = 7, cout = 13, x = { 2, 4, 33 }, stride = { 1, 2, 2 } },
    }
    check_each_mode(support.set_convT_rows, { "rows", "cvec" }, cases, true)
  end)

  it("matches the reference on the im2col + GEMM path (whole-sample batched tiles)", function()
    support.set_algo("gemm")
    check_case({ n = 3, cin = 3, cout = 5, x = { 5, 6, 7 }, k = { 3, 3, 3 }, stride = { 2, 1, 2 } }, false)
    check_case({ n = 2, cin = 4, cout = 3, x = { 9, 8 }, k = { 3, 3 }, stride = { 1, 1 } }, false)
  end)

  it("gives the same results when the workspace forces tiles of one row, several rows, and across planes", function()
    support.set_algo("gemm")
    local c = { n = 2, cin = 3, cout = 4, x = { 6, 9, 11 }, k = { 3, 3, 3 }, stride = { 1, 2, 1 } }
    for _, kb in ipairs({ 1, 4, 20 }) do
      support.set_workspace_kb(kb)
      check_case(c, false)
    end
    local c2 = { n = 2, cin = 3, cout = 5, x = { 10, 13 }, k = { 3, 3 }, stride = { 2, 1 } }
    support.set_workspace_kb(2)
    check_case(c2, false)
    support.set_workspace_kb(1)
    check_case({ n = 2, cin = 4, cout = 3, x = { 4, 6, 5 }, stride = { 2, 2, 2 } }, true)
    check_case({ n = 2, cin = 4, cout = 3, x = { 5, 7 }, stride = { 2, 2 } }, true)
  end)

  it("rejects mismatched shapes with a message naming the tensor", function()
    local x, w, y = const({ 1, 3, 5, 5 }, 0), const({ 4, 2, 3, 3 }, 0), const({ 1, 4, 5, 5 }, 0)
    local ok, err = pcall(conv.fwd, x, w, nil, y, { k = 3 })
    assert.is_false(ok)
    assert.matches("x has 3 channels", err)
    local w2 = const({ 4, 3, 3, 3 }, 0)
    ok, err = pcall(conv.fwd, x, w2, nil, const({ 1, 4, 4, 5 }, 0), { k = 3 })
    assert.is_false(ok)
    assert.matches("y has shape 1x4x4x5, expected 1x4x5x5", err)
  end)
end)

describe("convT (kernel == stride)", function()
  for _, c in ipairs(convT_cases) do
    it(("matches the reference, %d-D s=%s N=%d Cin=%d Cout=%d"):format(#c.x, table.concat(c.stride, ""), c.n, c.cin,
      c.cout), function() check_case(c, true) end)
  end
end)

-- L = sum(r * f(x, w, b)); the ops are linear in x and in w, so central differences are exact up to
-- float rounding and must agree with the analytic gradients from the backward ops.
describe("conv gradients vs central finite differences", function()
  local function fd_check(c, transposed)
    local xs = { c.n, c.cin, table.unpack(c.x) }
    local ws = weight_shape(c, transposed)
    local opts = transposed and { stride = c.stride } or { k = c.k, stride = c.stride }
    local ys = transposed and conv.T_out_shape(xs, c.cout, opts) or conv.out_shape(xs, c.cout, opts)
    local fwd = transposed and conv.T_fwd or conv.fwd
    local xf, wf, bf, rf = rand_flat(numel(xs)), rand_flat(numel(ws)), rand_flat(c.cout), rand_flat(numel(ys))
    local function loss(xv, wv, bv)
      local y = poisoned(ys)
      fwd(dev(xv, xs), dev(wv, ws), dev(bv, { c.cout }), y, opts)
      local s = 0
      for i, v in ipairs(y:flat()) do s = s + v * rf[i] end
      return s
    end
    local dx, dw, db = poisoned(xs), poisoned(ws), poisoned({ c.cout })
    local r = dev(rf, ys);
    (transposed and conv.T_bwd_data or conv.bwd_data)(r, dev(wf, ws), dx, opts);
    (transposed and conv.T_bwd_weight or conv.bwd_weight)(dev(xf, xs), r, dw, db, opts)
    local gx, gw, gb = dx:flat(), dw:flat(), db:flat()
    local eps = 0.25
    local function probe(vec, grad, idx, which)
      local keep = vec[idx]
      vec[idx] = keep + eps
      local lp = which == "x" and loss(vec, wf, bf) or which == "w" and loss(xf, vec, bf) or loss(xf, wf, vec)
      vec[idx] = keep - eps
      local lm = which == "x" and loss(vec, wf, bf) or which == "w" and loss(xf, vec, bf) or loss(xf, wf, vec)
      vec[idx] = keep
      local fd = (lp - lm) / (2 * eps)
      assert(math.abs(fd - grad[idx]) <= 1e-3 * math.max(1, math.abs(fd)),
        ("d/d%s[%d]: finite difference %g, backward %g"):format(which, idx, fd, grad[idx]))
    end
    for _, i in ipairs({ 1, #xf, (#xf + 1) // 2, 2, #xf - 3 }) do probe(xf, gx, i, "x") end
    for _, i in ipairs({ 1, #wf, (#wf + 1) // 2, 3 }) do probe(wf, gw, i, "w") end
    for i = 1, c.cout do probe(bf, gb, i, "b") end
  end

  it("for a strided anisotropic 3-D conv", function()
    fd_check({ n = 2, cin = 2, cout = 3, x = { 3, 5, 4 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } }, false)
  end)
  it("for a 2-D conv", function()
    fd_check({ n = 1, cin = 3, cout = 2, x = { 5, 6 }, k = { 3, 3 }, stride = { 1, 1 } }, false)
  end)
  it("for a transposed 3-D conv", function()
    fd_check({ n = 2, cin = 3, cout = 2, x = { 2, 3, 2 }, stride = { 2, 2, 1 } }, true)
  end)
end)

describe("bias gradient", function()
  -- few channels over large planes: the GPU path splits each channel into chunks (two-stage reduction)
  for _, case in ipairs { { n = 2, c = 3, h = 64, w = 128 }, { n = 1, c = 5, h = 7, w = 9 } } do
    it(("sums dy over batch and space (N %d, C %d, %dx%d) as float64 does, and accumulates"):format(
      case.n, case.c, case.h, case.w), function()
      local xs, ys = { case.n, 1, case.h, case.w }, { case.n, case.c, case.h, case.w }
      local dyf = rand_flat(numel(ys))
      for i = 1, #dyf do dyf[i] = dyf[i] + 0.25 end -- a mean away from 0: the sum does not cancel
      local x, dy = dev(rand_flat(numel(xs)), xs), dev(dyf, ys)
      local dyv = host(dyf, ys):flat()
      local want, S = {}, case.h * case.w
      for c = 1, case.c do
        local s = 0
        for n = 0, case.n - 1 do
          for i = 1, S do s = s + dyv[(n * case.c + c - 1) * S + i] end
        end
        want[c] = s
      end
      local dw, db = poisoned({ case.c, 1, 1, 1 }), poisoned({ case.c })
      conv.bwd_weight(x, dy, dw, db, { k = 1 })
      local got = db:flat()
      for c = 1, case.c do
        assert.is_true(math.abs(got[c] - want[c]) <= 1e-5 * math.abs(want[c]) + 1e-4,
          ("channel %d: %.9g vs float64 %.9g"):format(c, got[c], want[c]))
      end
      local db1 = const({ case.c }, 1)
      conv.bwd_weight(x, dy, dw, db1, { k = 1, accumulate = true })
      got = db1:flat()
      for c = 1, case.c do
        assert.is_true(math.abs(got[c] - (want[c] + 1)) <= 1e-5 * math.abs(want[c]) + 1e-4)
      end
    end)
  end
end)
