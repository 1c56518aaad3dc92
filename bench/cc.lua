-- Connected components on a 512x512x500 volume (goal: < 2 s on the 2-core machine).
-- Prints label and keep-largest times; run with `make bench` or `. scripts/env.sh && lua5.4 bench/cc.lua`.
local core = require "lunet.core"
local nz, ny, nx = 500, 512, 512
local n = nz * ny * nx
-- a deterministic mask: spheres plus sparse noise, built as bytes (fast in Lua)
local rows = {}
local seed = 12345
local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed end
local spheres = {}
for i = 1, 200 do spheres[i] = { rnd() % nz, rnd() % ny, rnd() % nx, 3 + rnd() % 25 } end
local t0 = os.clock()
local buf = {}
local zero_row = string.rep("\0", nx)
for z = 0, nz - 1 do
  for y = 0, ny - 1 do
    local row
    for _, s in ipairs(spheres) do
      local dz, dy = z - s[1], y - s[2]
      local r2 = s[4] * s[4] - dz * dz - dy * dy
      if r2 >= 0 then
        row = row or { zero_row:byte(1, -1) }
        local h = math.floor(math.sqrt(r2))
        for x = math.max(0, s[3] - h), math.min(nx - 1, s[3] + h) do row[x + 1] = 1 end
      end
    end
    if (z * ny + y) % 7 == 0 then row = row or { zero_row:byte(1, -1) }; row[(z * 31 + y) % nx + 1] = 1 end
    buf[#buf + 1] = row and string.char(table.unpack(row)) or zero_row
  end
end
local mask = core.from_bytes(table.concat(buf), { 1, nz, ny, nx }, "u8")
buf = nil
collectgarbage()
io.write(string.format("built %dx%dx%d mask in %.1f s\n", nz, ny, nx, os.clock() - t0))
local function wall() local p = io.popen("date +%s.%N"); local s = tonumber(p:read("a")); p:close(); return s end
for _, threads in ipairs({ 1, 2 }) do
  local a = wall()
  local _, ncomp = core.eval.cc_label(mask, { threads = threads })
  local b = wall()
  core.eval.keep_largest(mask, { 1 }, { threads = threads })
  local c = wall()
  io.write(string.format("threads=%d  cc_label: %.3f s (%d components)  keep_largest: %.3f s  (target < 2 s)\n",
    threads, b - a, ncomp, c - b))
end
