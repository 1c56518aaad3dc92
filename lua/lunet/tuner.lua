-- The kernel tuner behind `lunet tune --kernels`: for each tunable in the search space of the device's
-- class it times every candidate value on a set of convolution layers, keeps the fastest (one
-- tunable at a time, the others at their best so far) and writes the winners into the device's
-- tunables file (lunet.core.tune.save), which every later run applies.
local core = require "lunet.core"

local M = {}

-- The layers timed: nnU-Net-shaped convolutions (a 3-D encoder stage and a strided one, a 2-D
-- stage), batch 2; `quick` uses small ones (specs, a first look).
M.layers = {
  full = {
    { x = { 2, 32, 32, 32, 32 }, cout = 32, k = 3, stride = 1 },
    { x = { 2, 32, 32, 32, 32 }, cout = 64, k = 3, stride = 2 },
    { x = { 2, 64, 64, 64 }, cout = 64, k = 3, stride = 1 },
  },
  quick = {
    { x = { 1, 16, 8, 8, 32 }, cout = 16, k = 3, stride = 1 },
    { x = { 1, 16, 32, 32 }, cout = 16, k = 3, stride = 2 },
  },
}

-- Per class: the tunable, its candidates and the pass whose time decides it.
M.space = {
  cpu = {
    { name = "conv.wino_cich", values = { 8, 16, 32, 64 }, pass = "fwd" },
    { name = "conv.s2_cich", values = { 8, 16, 32 }, pass = "fwd" },
    { name = "conv.cich", values = { 16, 32, 64 }, pass = "fwd" },
    { name = "conv.wgrad_chunk", values = { 2048, 4096, 8192 }, pass = "bwd_weight" },
  },
  gpu = {
    { name = "conv.vx", values = { 4, 8, 16 }, pass = "fwd" },
    { name = "conv.cob", values = { 4, 8, 16 }, pass = "fwd" },
    { name = "conv.wgrad_vx", values = { 4, 8, 16 }, pass = "bwd_weight" },
    { name = "conv.cobw", values = { 4, 8, 16 }, pass = "bwd_weight" },
  },
}

local function numel(shape)
  local n = 1
  for _, s in ipairs(shape) do n = n * s end
  return n
end

local function random_tensor(shape, device)
  local t, seed = {}, 7
  for i = 1, numel(shape) do
    seed = (seed * 1103515245 + 12345) % 2147483648
    t[i] = seed / 2147483648 - 0.5
  end
  return core.tensor(t, { shape = shape, dtype = "f32" }):to_device(device)
end

-- Device tensors for one layer's three passes.
local function prepare(layer, device)
  local opts = { k = layer.k, stride = layer.stride }
  local ys = core.conv.out_shape(layer.x, layer.cout, opts)
  local ws = { layer.cout, layer.x[2] }
  for _ = 3, #layer.x do ws[#ws + 1] = layer.k end
  return {
    opts = opts, x = random_tensor(layer.x, device), w = random_tensor(ws, device),
    y = core.zeros(ys, "f32", device or true), dy = random_tensor(ys, device),
    dx = core.zeros(layer.x, "f32", device or true), dw = core.zeros(ws, "f32", device or true),
  }
end

local function run_pass(p, pass)
  if pass == "fwd" then core.conv.fwd(p.x, p.w, nil, p.y, p.opts)
  elseif pass == "bwd_data" then core.conv.bwd_data(p.dy, p.w, p.dx, p.opts)
  else core.conv.bwd_weight(p.x, p.dy, p.dw, nil, p.opts) end
end

-- Seconds of one pass over every layer: the median of `repeats` timed runs after one untimed run
-- (which also builds the kernels for the candidate).
local function time_pass(prepared, pass, repeats, device)
  local total = 0
  for _, p in ipairs(prepared) do
    run_pass(p, pass)
    core.finish(device)
    local times = {}
    for r = 1, repeats do
      local t0 = core.now()
      run_pass(p, pass)
      core.finish(device)
      times[r] = core.now() - t0
    end
    table.sort(times)
    total = total + times[(repeats + 1) // 2]
  end
  return total
end

-- opts: device (index or nil), quick, repeats (default 3), space (default M.space[class]), log
-- (function(line)), save (default true). Returns { class=, path=, results={ {name=, best=, times={
-- [value]=seconds } } } }.
function M.tune(opts)
  opts = opts or {}
  local device = opts.device
  local class = core.tune.class(device)
  local space = opts.space or M.space[class]
  local log = opts.log or function() end
  local prepared = {}
  for i, layer in ipairs(opts.layers or M.layers[opts.quick and "quick" or "full"]) do
    prepared[i] = prepare(layer, device)
  end
  local results = {}
  for _, entry in ipairs(space) do
    local best, best_t, times = nil, math.huge, {}
    for _, v in ipairs(entry.values) do
      core.tune.set(entry.name, v, device)
      local ok, t = pcall(time_pass, prepared, entry.pass, opts.repeats or 3, device)
      if ok then
        times[v] = t
        log(("%-18s %6d  %8.2f ms"):format(entry.name, v, t * 1e3))
        if t < best_t then best, best_t = v, t end
      else
        log(("%-18s %6d  failed: %s"):format(entry.name, v, tostring(t)))
      end
    end
    if best == nil then error(("lunet tune: every candidate of %s failed"):format(entry.name), 0) end
    core.tune.set(entry.name, best, device)
    results[#results + 1] = { name = entry.name, best = best, times = times }
  end
  local path = core.tune.path(device)
  if opts.save ~= false then path = core.tune.save(device) end
  return { class = class, path = path, results = results }
end

-- ---- the implicit GEMM's tile per GEMM shape (`lunet tune --igemm`) ----

-- A function running one training step (forward, loss, backward, update) of the plan's network on a
-- random batch, as the trainer would: the workload whose GEMMs tune_igemm records. opts: device,
-- precision ("mixed" stores float16 activations, as training on a GPU does), channels, classes.
function M.network_step(plans, configuration, opts)
  opts = opts or {}
  local lunet = require "lunet"
  local conf = lunet.net.configuration(plans, configuration)
  local channels, classes = opts.channels or 1, opts.classes or 2
  local net = lunet.net(plans, configuration, channels, classes, { precision = opts.precision or "mixed",
    device = opts.device })
  local shape, tshape = { conf.batch_size, channels }, { conf.batch_size, 1 }
  for _, s in ipairs(conf.patch_size) do
    shape[#shape + 1], tshape[#tshape + 1] = s, s
  end
  local ts = {}
  for i = 1, numel(tshape) do ts[i] = i % classes end
  local batch = {
    data = random_tensor(shape, opts.device),
    target = lunet.tensor(ts, { shape = tshape, dtype = "u8" }):to_device(opts.device),
  }
  return function() net:train_step(batch) end, net
end

-- Records the implicit-GEMM shapes that opts.step() runs, then times each with every tile of
-- conv.igemm_tile that fits the device (opts.tiles: a subset of names) and keeps the fastest as
-- conv.igemm_tile@<key> (saved to the device's tunables file unless save = false). With budget_s, the
-- GEMMs are tuned largest first (by M N K) until that many seconds have gone; the rest keep the rule.
-- opts: step, device, repeats (default 3), tiles, budget_s, log, save.
-- Returns { path=, results={ {key=, best=, rule=, times={ [tile]=s } } }, skipped = n }.
function M.tune_igemm(opts)
  local device, log = opts.device, opts.log or function() end
  core.conv.igemm_record(true)
  local ok, err = pcall(opts.step)
  local recorded = core.conv.igemm_record(false)
  if not ok then error(err, 0) end
  if #recorded == 0 then
    error("lunet tune --igemm: the network ran no implicit-GEMM convolution on this device (they run for " ..
      "float16 activations on GPUs; conv.igemm = 1 forces them)", 0)
  end
  local tiles = opts.tiles or core.conv.igemm_tiles()
  local order = {}
  for i = 1, #recorded do order[i] = i end
  local t_start = core.now()
  if opts.budget_s then -- the largest GEMMs (M N K multiply-adds, from the key) first
    local work = {}
    for i, r in ipairs(recorded) do
      local m, n, k = r.key:match("(%d+)x(%d+)x(%d+)$")
      work[i] = tonumber(m) * tonumber(n) * tonumber(k)
    end
    table.sort(order, function(a, b) return work[a] > work[b] or (work[a] == work[b] and a < b) end)
  end
  local results = {}
  for _, i in ipairs(order) do
    if opts.budget_s and core.now() - t_start > opts.budget_s then break end
    local r = recorded[i]
    local best, best_t, times = nil, math.huge, {}
    for _, tile in ipairs(tiles) do
      local t, why
      if tile:sub(-1) ~= "l" or r.ldmatrix then -- the "l" tiles only where the kernel has f16 fragments
        t, why = core.conv.igemm_time(i, tile, opts.repeats or 3, device)
      end
      if t then
        times[tile] = t
        if t < best_t then best, best_t = tile, t end
      elseif why then
        log(("%-44s %-10s skipped: %s"):format(r.key, tile, why))
      end
    end
    if best then
      core.tune.set("conv.igemm_tile@" .. r.key, best, device)
      if opts.save ~= false then core.tune.save(device) end -- kept so far, should the run be cut off
      log(("%-44s %-10s %8.3f ms (rule %s: %s)"):format(r.key, best, best_t * 1e3, r.rule,
        times[r.rule] and ("%.3f ms"):format(times[r.rule] * 1e3) or "-"))
    end
    results[#results + 1] = { key = r.key, best = best, rule = r.rule, times = times }
  end
  local skipped = #recorded - #results
  if skipped > 0 then log(("%d GEMMs past the %g s budget keep the rule's tile"):format(skipped, opts.budget_s)) end
  local path = core.tune.path(device)
  if opts.save ~= false then path = core.tune.save(device) end
  return { path = path, results = results, skipped = skipped }
end

return M
