-- Run under mpirun -np 2 by spec/dist_spec.lua: the gradient of the global batch (tiny3d fixture, batch 2), split
-- over the ranks (one sample each) and averaged by dist.allreduce_grads, against rank 0's single-process gradient of
-- the whole batch; then one update on both. Rank 0 writes "<max rel grad diff> <max abs param diff> <loss diff>"
-- to arg[1]. arg[2] = "batch_dice": with the batch Dice, its sums reduced over the ranks; "local_dice": each rank's
-- own batch Dice (what DDP without the all-gather would give). The gradients are averaged in buckets overlapping the
-- backward (LUNET_BUCKET_MB, default 25 MB: one bucket here). arg[2] = "buckets": instead, rank 0 writes
-- "<max abs diff> <buckets> <cut tensors> <buckets read before the backward's end>" between the gradient averaged after the backward (no buckets) and in
-- 1001-float buckets (boundaries inside tensors).
local lunet = require "lunet"
local core = require "lunet.core"
local dist = require "lunet.dist"
local F = "spec/fixtures/net/"
local out, mode = arg[1], arg[2]
local n, r = dist.size(), dist.rank()
assert(n == 2, "run with 2 ranks")

local function floats(s)
  local t = {}
  for i = 1, #s // 4 do t[i] = string.unpack("<f", s, 4 * i - 3) end
  return t
end
local function slice(t, b, nb) -- samples b..b+nb-1 (0-based) of a batch tensor
  local per = t:numel() // t.shape[1]
  local es = t.dtype == "f64" and 8 or 4
  local shape = { nb }
  for i = 2, #t.shape do shape[i] = t.shape[i] end
  return core.from_bytes(t:bytes():sub(b * per * es + 1, (b + nb) * per * es), shape, t.dtype)
end

local x = lunet.io.npy.read(F .. "tiny3d_x.npy")
local seg = lunet.io.npy.read(F .. "tiny3d_seg.npy")
local function net()
  local a = lunet.net(F .. "tiny_plans.json", "tiny3d", 1, 3)
  a:load(F .. "tiny3d_init.pth")
  return a
end
local gb, _ = dist.split_batch(x.shape[1], 0.33)
if mode == "buckets" then
  local function averaged(mb)
    local a = net()
    local nb = dist.setup_buckets(a, mb)
    a.core:train_grad(slice(x, r * gb, gb), slice(seg, r * gb, gb), a:train_opts { lr = 0.01 })
    dist.allreduce_grads(a)
    return floats(a.core:flat(1)), nb, a
  end
  local g0, n0 = averaged(0)
  local bytes = 1001 * 4
  local g1, n1, a = averaged(bytes / 1048576)
  assert(n0 == 0, "buckets with LUNET_BUCKET_MB 0")
  local md = #g0 == #g1 and 0 or math.huge
  for i = 1, #g0 do md = math.max(md, math.abs(g0[i] - g1[i])) end
  -- bucket boundaries (counted from the buffer's end) that fall strictly inside a parameter tensor
  local cut, nf = 0, #g0
  for _, p in ipairs(a.core:params()) do
    for k = 1, n1 - 1 do
      local b = nf - k * 1001
      if b > p.offset and b < p.offset + p.numel then cut = cut + 1 end
    end
  end
  if r == 0 then
    local f = assert(io.open(out, "w"))
    local _, early = core.dist.bucket_stats(a.core)
    f:write(("%.9g %d %d %d\n"):format(md, n1, cut, early))
    f:close()
  end
  return
end
local bd = mode == "batch_dice"
local a = net()
local opts = a:train_opts { lr = 0.01, batch_dice = bd }
opts.dist_batch_dice = mode ~= "local_dice" -- local_dice: each rank's own batch Dice (the difference it makes)
if mode == "local_dice" then opts.batch_dice = true end
dist.setup_buckets(a)
local l = a.core:train_grad(slice(x, r * gb, gb), slice(seg, r * gb, gb), opts)
dist.allreduce_grads(a)
local lmean = dist.mean(l)
local g2 = floats(a.core:flat(1))
a.core:train_update(opts)
local p2 = floats(a.core:flat(0))
if r == 0 then
  local b = net()
  local ref = b:train_opts { lr = 0.01, batch_dice = bd or mode == "local_dice" } -- no reduction over ranks
  local l1 = b.core:train_grad(x, seg, ref)
  local g1 = floats(b.core:flat(1))
  b.core:train_update(ref)
  local p1 = floats(b.core:flat(0))
  local md, mx, mp = 0, 0, 0
  for i = 1, #g1 do
    md = math.max(md, math.abs(g1[i] - g2[i])); mx = math.max(mx, math.abs(g1[i]))
    mp = math.max(mp, math.abs(p1[i] - p2[i]))
  end
  local f = assert(io.open(out, "w"))
  f:write(("%.9g %.9g %.9g\n"):format(md / mx, mp, math.abs(l1 - lmean)))
  f:close()
end
