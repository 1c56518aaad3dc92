-- Run under mpirun -np 2 by spec/dist_spec.lua: rank 1 fails while rank 0 waits in collectives.
--   arg[1] = "kill": rank 1 kill -9s itself;  "raise": rank 1 raises inside dist.guard (MPI_Abort names it).
local dist = require "lunet.dist"
local mode = arg[1]
local function pid()
  local f = assert(io.open("/proc/self/stat"))
  local p = f:read("a"):match("^(%d+)")
  f:close()
  return p
end
dist.guard(function()
  dist.barrier()
  if dist.rank() == 1 then
    if mode == "kill" then os.execute("kill -9 " .. pid()) end
    if mode == "raise" then error("planned failure of rank 1") end
  end
  for _ = 1, 1e6 do dist.mean(1) end -- rank 0 would wait here forever for a rank that has gone
end)
