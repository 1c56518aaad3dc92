-- Seconds per training iteration with data loading + augmentation (sampler -> augmentation -> cast/reshape ->
-- train_step, as lunet.trainer runs it) versus the bare training step on a batch prepared in advance.
-- Goal: data loading adds <= 10 %. A third loop runs as lunet.trainer does by default: the step on a
-- worker thread (lunet.core.async) while the host prepares the next batch; its waiting share is the part of the
-- iteration in which no step runs.
--   lua5.4 bench/train_epoch.lua [iterations] [plans.json] [configuration] [heavy]
-- heavy: every augmentation drawn with probability 1 (rotation, scaling, noise, blur, ..., mirroring): the
-- worst case for the host side.
-- Default: spec/fixtures/plans/ct_iso/nnUNetPlans.json 2d (the network and batch of bench/train_step.lua) on
-- synthetic in-memory cases (bright discs on noise, 10 cases of 4x the patch area).
local lunet = require "lunet"
local core = lunet.core
local clock = require "lunet.util.clock"
local json = require "lunet.util.json"

local N = tonumber(arg and arg[1]) or 6
local PLANS = arg and arg[2] or "spec/fixtures/plans/ct_iso/nnUNetPlans.json"
local CFG = arg and arg[3] or "2d"
local HEAVY = arg and arg[4] == "heavy"

local plans = lunet.planner.read(PLANS)
local cfg = lunet.planner.configuration(plans, CFG)
local patch = cfg.patch_size
assert(#patch == 2, "this bench builds 2-D cases; pass a 2d configuration")
local H, W = 2 * patch[1], 2 * patch[2]

-- synthetic cases
local rng = core.rng.new(11, 0)
local cases = {}
for i = 1, 10 do
  local img, seg, loc = {}, {}, {}
  local cy, cx, r = rng:int(H // 4, 3 * H // 4), rng:int(W // 4, 3 * W // 4), math.min(H, W) // 6
  for y = 0, H - 1 do
    for x = 0, W - 1 do
      local inside = (y - cy) ^ 2 + (x - cx) ^ 2 <= r * r
      img[#img + 1] = (inside and 1.0 or -0.5) + rng:uniform(0, 0.5)
      seg[#seg + 1] = inside and 1 or 0
      if inside then for _, v in ipairs({ 0, 0, y, x }) do loc[#loc + 1] = v end end
    end
  end
  cases[i] = {
    data = lunet.tensor(img, { shape = { 1, 1, H, W }, dtype = "f32" }),
    seg = lunet.tensor(seg, { shape = { 1, 1, H, W }, dtype = "i16" }),
    class_locations = { lunet.tensor(loc, { shape = { #loc // 4, 4 }, dtype = "i32" }) },
    key = ("case_%02d"):format(i),
  }
end

local rules = require "lunet.rules.default"
local tr = rules.trainer
if HEAVY then
  local a = rules.augmentation
  a.spatial.p_rotation, a.spatial.p_scaling = 1, 1
  for _, k in ipairs({ "gaussian_noise", "gaussian_blur", "brightness", "contrast", "low_resolution", "gamma" }) do
    a[k].p = 1
  end
  a.gaussian_blur.p_per_channel, a.low_resolution.p_per_channel = 1, 1
end
local loader = lunet.sampler.new { cases = cases, patch_size = patch, batch_size = cfg.batch_size,
  oversample = tr.oversample_foreground_percent, seed = 1, augmentation = rules.augmentation, threads = 2 }
local net = lunet.net(plans, CFG, 1, 2, { seed = 1 })

local function to_net(b)
  local d, s = b.data, b.seg
  return d:reshape({ d.shape[1], d.shape[2], d.shape[4], d.shape[5] }),
    s:astype("i32"):reshape({ s.shape[1], s.shape[2], s.shape[4], s.shape[5] })
end

local function step(x, y) return net:train_step { data = x, target = y, lr = 0.01 } end

-- warm-up (kernel compilation, pools)
local x0, y0 = to_net(loader:next_batch())
step(x0, y0)
step(x0, y0)

local function opts(x, y) return net:train_opts { data = x, target = y, lr = 0.01 } end

-- interleaved (bare step, a loaded iteration, an overlapped iteration) so load drift on the shared machine hits
-- all alike
local bare, full, load, over, over_step = 0, 0, 0, 0, 0
local nx, ny = to_net(loader:next_batch())
for _ = 1, N do
  local t = clock.now()
  step(x0, y0)
  bare = bare + clock.now() - t
  t = clock.now()
  local x, y = to_net(loader:next_batch())
  local tl = clock.now() - t
  step(x, y)
  full = full + clock.now() - t
  load = load + tl
  -- overlapped: the step runs on a worker thread while the next batch is prepared
  t = clock.now()
  local job = core.async.train_step(net.core, nx, ny, opts(nx, ny))
  nx, ny = to_net(loader:next_batch())
  local _, _, secs = job:wait()
  over = over + clock.now() - t
  over_step = over_step + secs
end
bare, full, load, over, over_step = bare / N, full / N, load / N, over / N, over_step / N

local dev = lunet.devices()[1]
local line = ("train_epoch.lua: %s %s (patch %s, batch %d), %d iterations: bare step %.3f s/it, with sampling + " ..
  "augmentation %.3f s/it (loading %.4f s/it = %.1f %% of the bare step; difference of the two loops %.1f %%, timing noise included) " ..
  "(goal: loading adds <= 10 %%) [%s, %s]")
  :format((PLANS:match("([^/]+/[^/]+)%.json$") or PLANS) .. (HEAVY and " heavy-aug" or ""), CFG, table.concat(patch, "x"), cfg.batch_size, N, bare, full,
    load, 100 * load / bare, 100 * (full - bare) / bare, dev and dev.name or "?", os.date("%Y-%m-%d"))
print(line)
print(("  waiting share (iteration time in which no step runs): sequential %.1f %%, overlapped (prefetch, as the " ..
  "trainer) %.1f %%; overlapped iteration %.3f s/it (step on the worker %.3f s)"):format(
  100 * load / full, 100 * math.max(0, over - over_step) / over, over, over_step))
return { bare = bare, full = full, load = load, overlapped = over, overlapped_step = over_step }
