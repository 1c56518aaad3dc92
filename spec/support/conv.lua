-- What the conv specs share: the float64 reference convolutions (lunet.testing, test-only C) wrapped
-- to take and return tensors, and the kernel switches of the old conv.set_* API expressed as the
-- device's tunables (lunet.core.tune), so that a spec forces each strategy by name.
local core = require "lunet.core"
local testing = require "lunet.testing"

local M = {}

local function axes(v, nsp, dflt)
  local out = {}
  for i = 1, nsp do
    if type(v) == "table" then out[i] = v[i] elseif v ~= nil then out[i] = v else out[i] = dflt[i] end
  end
  return out
end

-- The reference's geometry (three spatial axes) from an input shape, weight shape and conv opts, as
-- lunet.core.conv reads them: k from opts or the weight, stride 1 (transposed: k), pad (k - 1) / 2.
local function geometry(x_shape, w_shape, opts, transposed)
  opts = opts or {}
  local nsp = #x_shape - 2
  local wk = {}
  for i = 1, nsp do wk[i] = w_shape[2 + i] end
  local k = axes(opts.k, nsp, wk)
  local stride = axes(opts.stride, nsp, transposed and k or { 1, 1, 1 })
  if transposed then k = stride end
  local pad_default = {}
  for i = 1, nsp do pad_default[i] = transposed and 0 or (k[i] - 1) // 2 end
  local pad = transposed and pad_default or axes(opts.pad, nsp, pad_default)
  local g = { n = x_shape[1], transposed = transposed or false, input = {}, k = {}, stride = {}, pad = {} }
  g.cin = transposed and w_shape[1] or w_shape[2]
  g.cout = transposed and w_shape[2] or w_shape[1]
  for i = 1, 3 do
    local a = i - (3 - nsp)
    g.input[i] = a >= 1 and x_shape[2 + a] or 1
    g.k[i] = a >= 1 and k[a] or 1
    g.stride[i] = a >= 1 and stride[a] or 1
    g.pad[i] = a >= 1 and pad[a] or 0
  end
  local out = testing.conv_out(g)
  local y_shape = { g.n, g.cout }
  for i = 4 - nsp, 3 do y_shape[#y_shape + 1] = out[i] end
  return g, y_shape
end

local function f64(t) return t and t:astype("f64"):bytes() end
local function tensor(bytes, shape) return core.from_bytes(bytes, shape, "f64") end

function M.ref_fwd(x, w, b, opts, transposed)
  local g, ys = geometry(x.shape, w.shape, opts, transposed)
  local y = tensor(testing.conv_ref("fwd", g, f64(x), f64(w), nil), ys)
  if b then -- the bias, broadcast over N and space
    local flat, bias = y:flat(), b:flat()
    local per = #flat // (ys[1] * ys[2])
    for i = 1, #flat do flat[i] = flat[i] + bias[((i - 1) // per) % ys[2] + 1] end
    y = core.tensor(flat, { shape = ys, dtype = "f64" })
  end
  return y
end

function M.ref_bwd_data(dy, w, x_shape, opts, transposed)
  local g = geometry(x_shape, w.shape, opts, transposed)
  return tensor(testing.conv_ref("bwd_data", g, nil, f64(w), f64(dy)), x_shape)
end

-- -> dw, db
function M.ref_bwd_weight(x, dy, w_shape, opts, transposed)
  local g, ys = geometry(x.shape, w_shape, opts, transposed)
  local dw = tensor(testing.conv_ref("bwd_weight", g, f64(x), nil, f64(dy)), w_shape)
  local flat, db = dy:astype("f64"):flat(), {}
  local per = #flat // (ys[1] * ys[2])
  for c = 1, ys[2] do db[c] = 0 end
  for i = 1, #flat do local c = ((i - 1) // per) % ys[2] + 1; db[c] = db[c] + flat[i] end
  return dw, core.tensor(db, { shape = { ys[2] }, dtype = "f64" })
end

-- Kernel switches: switch(mode [, count ...]). Mode `on` sets the tunable to 1 (wherever the geometry
-- allows), `off` to 0 (never), nil back to the rule; each count goes into the next tunable (nil: unset).
local function switch(name, on, off, counts)
  return function(mode, ...)
    if mode ~= nil and mode ~= on and mode ~= off then
      error(("%s: '%s', '%s' or nil"):format(name, on, off), 2)
    end
    core.tune.set(name, mode == nil and nil or (mode == on and 1 or 0))
    local n = select("#", ...)
    for i, t in ipairs(counts or {}) do core.tune.set(t, i <= n and select(i, ...) or nil) end
  end
end

M.set_wgrad = switch("conv.wgrad_taps", "taps", "per_tap", { "conv.wgrad_chunk" })
M.set_fwd = switch("conv.rows", "rows", "direct", { "conv.cich", "conv.rgrp", "conv.wdirect" })
M.set_dgrad = switch("conv.dgrad_rows", "rows", "phases", { "conv.phase_order" })
M.set_convT_dgrad = switch("convT.dgrad", "lanes", "conv")
M.set_convT_rows = switch("convT.rows", "rows", "cvec")
M.set_wino = switch("conv.wino", "wino", "direct", { "conv.wino_cich", "conv.wino_rg" })
-- set_wino_tile(mode [, chunk [, cob]]): conv_wino's tiles: "rows" (F(2,3) along x only, conv_wino), "2d"
-- ((y, x) tiles), "3d" ((z, y, x) tiles where the kernel has 3 planes), "4x4" (F(4x4, 3x3) tiles over (y, x)),
-- nil back to the rule; chunk and cob go into conv.wino_tile_cich and conv.wino_tile_cob (nil: unset).
function M.set_wino_tile(mode, chunk, cob)
  local modes = { rows = 0, ["2d"] = 1, ["3d"] = 2, ["4x4"] = 3 }
  if mode ~= nil and not modes[mode] then error("conv.wino_tile: 'rows', '2d', '3d', '4x4' or nil", 2) end
  core.tune.set("conv.wino_tile", mode and modes[mode])
  core.tune.set("conv.wino_tile_cich", chunk)
  core.tune.set("conv.wino_tile_cob", cob)
end
M.set_s2rows = switch("conv.s2rows", "s2rows", "direct", { "conv.s2_cich", "conv.s2_rg" })

function M.set_algo(a)
  if a ~= nil and a ~= "gemm" and a ~= "direct" then error("set_algo: 'gemm', 'direct' or nil", 2) end
  core.tune.set("conv.algo", a)
end

function M.set_workspace_kb(kb)
  core.tune.set("conv.workspace_kb", (kb and kb > 0) and kb or nil)
end

-- ---- what the conv specs share besides the references ----

function M.numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

-- A generator of uniform values in [-1, 1): rand(n) -> a list of n, from its own LCG stream (seed).
function M.rand_stream(seed)
  return function(n)
    local t = {}
    for i = 1, n do
      seed = (seed * 1103515245 + 12345) % 2147483648
      t[i] = seed / 2147483648 * 2 - 1
    end
    return t
  end
end

-- max |got - ref| / max |ref|; NaN anywhere in got gives math.huge and its index
function M.rel_err(got, ref)
  local g, r = got:flat(), ref:flat()
  assert(#g == #r, ("size %d vs reference %d"):format(#g, #r))
  local dmax, rmax = 0, 0
  for i = 1, #r do
    if g[i] ~= g[i] then return math.huge, i end
    local d = math.abs(g[i] - r[i])
    if d > dmax then dmax = d end
    if math.abs(r[i]) > rmax then rmax = math.abs(r[i]) end
  end
  return dmax / math.max(rmax, 1e-30)
end

-- The weight shape of a conv_cases / convT_cases entry.
function M.weight_shape(c, transposed)
  local ws = transposed and { c.cin, c.cout } or { c.cout, c.cin }
  local k = transposed and c.stride or c.k
  for i = 1, #c.x do ws[#ws + 1] = k[i] end
  return ws
end

-- Fails naming `what` when rel_err exceeds tol (default 1e-4).
function M.close(got, ref, what, tol)
  tol = tol or 1e-4
  local e, at = M.rel_err(got, ref)
  assert(e <= tol, ("%s: relative error %g (tolerance %g)%s"):format(what, e, tol, at and (" (NaN at element " .. at .. ")") or ""))
end

-- The geometries every convolution strategy is checked on (conv_spec, igemm_spec): each line says which
-- kernel path it reaches.
M.conv_cases = {
  { n = 2, cin = 3, cout = 5, x = { 7, 9, 11 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
  { n = 1, cin = 4, cout = 6, x = { 9, 8, 7 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
  { n = 2, cin = 5, cout = 3, x = { 5, 9, 10 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
  { n = 2, cin = 2, cout = 4, x = { 7, 5, 6 }, k = { 3, 1, 3 }, stride = { 2, 1, 1 }, nobias = true },
  { n = 2, cin = 6, cout = 4, x = { 3, 5, 7 }, k = { 1, 1, 1 }, stride = { 1, 1, 1 } },
  { n = 3, cin = 4, cout = 8, x = { 13, 17 }, k = { 3, 3 }, stride = { 1, 1 } },
  { n = 2, cin = 3, cout = 2, x = { 12, 11 }, k = { 3, 3 }, stride = { 2, 2 } },
  { n = 2, cin = 5, cout = 7, x = { 9, 6 }, k = { 1, 1 }, stride = { 2, 2 } },
  { n = 1, cin = 1, cout = 9, x = { 10, 15 }, k = { 3, 1 }, stride = { 1, 2 } },
  { n = 2, cin = 17, cout = 33, x = { 6, 7, 5 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
  -- wide rows: the 16- and 8-lane shuffled tap loads, stride 1 and 2
  { n = 1, cin = 2, cout = 3, x = { 5, 40 }, k = { 3, 3 }, stride = { 1, 2 } },
  { n = 1, cin = 3, cout = 4, x = { 3, 6, 17 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
  { n = 2, cin = 3, cout = 2, x = { 3, 35 }, k = { 3, 3 }, stride = { 1, 1 } },
  -- narrow rows with >= 12 output channels: the channel-vector kernel (conv_cvec), strided and split rows
  { n = 2, cin = 5, cout = 20, x = { 5, 9, 11 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
  { n = 1, cin = 14, cout = 16, x = { 7, 13 }, k = { 3, 3 }, stride = { 1, 1 } },
  -- strided with >= 12 input channels: the channel-vector backward data (dgrad_cvec), rows split at 8
  { n = 1, cin = 13, cout = 3, x = { 5, 6, 19 }, k = { 3, 3, 3 }, stride = { 2, 2, 2 } },
  { n = 2, cin = 16, cout = 4, x = { 9, 10 }, k = { 3, 3 }, stride = { 1, 2 } },
  -- strided backward data by output phases (run_dgrad_phases): a 1-tap axis, two partial channel
  -- blocks of dx, an axis of one voxel (no odd phase), odd and even extents
  { n = 2, cin = 20, cout = 18, x = { 3, 8, 9 }, k = { 1, 3, 3 }, stride = { 1, 2, 2 } },
  { n = 1, cin = 12, cout = 5, x = { 1, 7 }, k = { 3, 3 }, stride = { 2, 2 } },
  { n = 1, cin = 33, cout = 7, x = { 4, 5, 6 }, k = { 3, 3, 3 }, stride = { 2, 1, 2 } },
  -- a wide row with >= 12 output channels: x-vector forward, channel-vector weight gradient
  { n = 2, cin = 5, cout = 17, x = { 3, 4, 37 }, k = { 3, 3, 3 }, stride = { 1, 1, 1 } },
}

M.convT_cases = {
  { n = 2, cin = 6, cout = 4, x = { 3, 4, 5 }, stride = { 2, 2, 2 } },
  { n = 1, cin = 5, cout = 3, x = { 3, 5, 4 }, stride = { 1, 2, 2 } },
  { n = 2, cin = 4, cout = 7, x = { 5, 7 }, stride = { 2, 2 } },
  { n = 3, cin = 3, cout = 5, x = { 2, 3, 3 }, stride = { 1, 1, 1 } },
  { n = 2, cin = 9, cout = 2, x = { 6, 5 }, stride = { 2, 1 }, nobias = true },
  -- wide rows: backward weight runs the direct wgrad kernel's 16- and 8-lane even/odd tap loads
  { n = 1, cin = 3, cout = 2, x = { 2, 3, 21 }, stride = { 2, 2, 2 } },
  { n = 2, cin = 2, cout = 3, x = { 3, 10 }, stride = { 2, 2 } },
  -- >= 12 output channels: the channel-vector forward (convT_cvec), rows split into 8-wide pieces
  { n = 2, cin = 5, cout = 18, x = { 3, 4, 5 }, stride = { 2, 2, 2 } },
  { n = 1, cin = 3, cout = 16, x = { 5, 9 }, stride = { 1, 2 } },
  -- both output rows of an input row per work-item (2 taps along y), a partial channel block
  { n = 2, cin = 4, cout = 13, x = { 3, 10 }, stride = { 2, 2 } },
  -- weights over 1 MB: the work-items of one channel block run one after another (decoded order)
  { n = 2, cin = 160, cout = 260, x = { 2, 2, 3 }, stride = { 2, 2, 2 } },
}

return M
