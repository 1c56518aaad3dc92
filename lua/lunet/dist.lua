--[[ lunet.dist: data-parallel training over MPI (lunet.core.dist), as nnU-Net's DDP (nnUNetTrainer with
-num_gpus N). A process started by mpirun/mpiexec/srun is one rank of the job; any other process is a world of
one rank, in which every function here is the identity and training runs exactly the single-process path.

  local dist = require "lunet.dist"
  dist.size(), dist.rank(), dist.local_rank(), dist.is_main()     -- rank 0 writes logs, checkpoints, progress.png
  dist.split_batch(global_batch, oversample [, size, rank]) -> batch, oversample   (_set_batch_size_and_oversample)
  dist.device(explicit) -> OpenCL device index: explicit, else local rank + LUNET_DEVICE_OFFSET among the GPUs (mod)
  dist.mean(x), dist.sum(list), dist.max(x)                     -- scalars and lists over ranks
  dist.allreduce_grads(net) -> seconds                          -- mean of the gradient buffers
  dist.bucket_mb() -> MB                                        -- LUNET_BUCKET_MB, default 25 (0: no buckets)
  dist.setup_buckets(net [, mb]) -> n                           -- bucketed allreduce overlapping the backward
  dist.bcast_params(net)                                        -- rank 0's weights and momentum to all
  dist.barrier(), dist.abort(code, msg), dist.guard(fn, ...)    -- fn's error ends every rank (MPI_Abort)
]]
local core = require "lunet.core"
local cd = core.dist

local M = {}

local size
function M.size()
  if not size then size = cd and cd.init() or 1 end
  return size
end
function M.rank() return M.size() > 1 and cd.rank() or 0 end
function M.local_rank() return M.size() > 1 and cd.local_rank() or 0 end
function M.is_main() return M.rank() == 0 end
function M.host() return cd and cd.host() or "localhost" end

--- nnUNetTrainer._set_batch_size_and_oversample: the global batch split over the ranks (the first ranks take one
--- more when it does not divide), and each rank's oversampling share so that the global batch keeps the
--- single-process pattern of forced-foreground positions. Returns this rank's batch size and oversample percent.
function M.split_batch(global, oversample, n, r)
  n, r = n or M.size(), r or M.rank()
  if n <= 1 then return global, oversample end
  if global < n then
    error(("cannot train on %d ranks with a batch size of %d: the batch is split over the ranks (at most %d ranks)")
      :format(n, global, global), 0)
  end
  local per = {}
  for i = 0, n - 1 do
    local b = global // n
    if b * n + i < global then b = b + 1 end
    per[i + 1] = b
  end
  local low = 0
  for i = 1, r do low = low + per[i] end
  local high = low + per[r + 1]
  local thr = 1 - oversample
  local pct
  if high / global < thr then pct = 0.0
  elseif low / global > thr then pct = 1.0
  else
    local c = 0 -- the single-process pattern of the global batch (lu_sampler_force_fg: python's round)
    for i = low, high - 1 do if core.sampler.force_fg(global, oversample, i) then c = c + 1 end end
    pct = c / per[r + 1]
  end
  return per[r + 1], pct
end

--- The OpenCL device of this rank: an explicit index wins (--device D, or LUNET_DEVICE=index), else the devices of
--- the kind the single-process default picks (GPUs when there is one, or LUNET_DEVICE=cpu|gpu), the rank's local rank
--- plus LUNET_DEVICE_OFFSET (default 0) choosing among them, modulo their number (ranks share a device when a
--- machine has fewer devices than ranks). devs, lr, n: lunet.devices()'s list, local rank and size (for specs).
function M.device(explicit, devs, lr, n)
  if explicit ~= nil then return explicit end
  if (n or M.size()) <= 1 then return nil end
  local want = os.getenv("LUNET_DEVICE")
  if want and math.tointeger(tonumber(want)) then return math.tointeger(tonumber(want)) end
  if not devs then
    local ok, d = pcall(function() return require("lunet").devices() end)
    devs = ok and type(d) == "table" and d or {}
  end
  local kind = (want == "cpu" or want == "gpu") and want or nil
  if not kind then
    for _, d in ipairs(devs) do if d.type == "gpu" then kind = "gpu" end end
  end
  local cand = {}
  for i, d in ipairs(devs) do
    if not kind or d.type == kind then cand[#cand + 1] = d.index or (i - 1) end
  end
  if #cand == 0 then return nil end
  local off = tonumber(os.getenv("LUNET_DEVICE_OFFSET") or "") or 0
  return cand[(off + (lr or M.local_rank())) % #cand + 1]
end

function M.sum(list)
  if M.size() <= 1 then return list end
  return cd.allreduce(list, "sum")
end
function M.mean(x)
  if M.size() <= 1 then return x end
  return cd.allreduce({ x }, "sum")[1] / M.size()
end
function M.max(x)
  if M.size() <= 1 then return x end
  return cd.allreduce({ x }, "max")[1]
end

function M.allreduce_grads(net)
  if M.size() <= 1 then return 0 end
  return cd.allreduce_grads(net.core or net)
end

--- The gradient bucket size in MB (MiB, as DDP's bucket_cap_mb): LUNET_BUCKET_MB, default 25; 0 turns the buckets
--- off (one allreduce of the whole buffer after the backward).
function M.bucket_mb()
  local v = os.getenv("LUNET_BUCKET_MB")
  if v == nil or v == "" then return 25 end
  local mb = tonumber(v)
  if not mb or mb < 0 or mb ~= mb or mb == math.huge then
    error(("LUNET_BUCKET_MB=%s: expected a size in MB >= 0 (0 turns the gradient buckets off)"):format(v), 0)
  end
  return mb
end

--- Attaches bucketed gradient averaging to the network (csrc/dist/gradsync.h): from the next backward on, each
--- bucket of the flat gradient buffer is read to the host and its MPI_Iallreduce started as soon as the backward
--- has finished its gradients, while the rest of the backward runs; dist.allreduce_grads then completes it.
--- mb: bucket size (default dist.bucket_mb()). Returns the number of buckets (0: one rank, or mb = 0).
function M.setup_buckets(net, mb)
  mb = mb or M.bucket_mb()
  if M.size() <= 1 then return 0 end
  return cd.set_buckets(net.core or net, math.floor(mb * 1048576))
end

function M.bcast_params(net)
  if M.size() <= 1 then return end
  cd.bcast_flat(net.core or net, 0, 0)
  cd.bcast_flat(net.core or net, 2, 0)
end

function M.barrier() if M.size() > 1 then cd.barrier() end end

function M.abort(code, msg)
  if cd then cd.abort(code or 1, msg) end
  io.stderr:write("lunet: ", tostring(msg), "\n")
  os.exit(code or 1)
end

--- Runs fn(...); in a job of several ranks an error in it is reported with the rank and ends every rank (MPI_Abort:
--- mpirun then stops the others), so no rank waits forever in a collective for a rank that has gone.
function M.guard(fn, ...)
  if M.size() <= 1 then return fn(...) end
  local res = table.pack(xpcall(fn, debug.traceback, ...))
  if not res[1] then M.abort(1, tostring(res[2])) end
  return table.unpack(res, 2, res.n)
end

return M
