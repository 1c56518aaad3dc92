-- bench/io.lua: reading a 512x512x500 int16 .nii.gz with lunet.io.image.read vs `gzip -dc file > /dev/null`
-- on the same file (goal: ratio <= 1.5). The file is generated once under /tmp (CT-like: smooth
-- structures plus noise, so it compresses about as real CT does). Appends the result to bench/RESULTS.md.
local lunet = require "lunet"
local image = lunet.io.image

local PATH = os.getenv("LUNET_BENCH_NII") or "/tmp/lunet_bench_512x512x500_i16.nii.gz"
local NX, NY, NZ = 512, 512, 500

local function now()
  local p = io.popen("date +%s.%N")
  local t = tonumber(p:read("l"))
  p:close()
  return t
end

local function exists(p)
  local f = io.open(p, "rb")
  if f then f:close() return true end
  return false
end

if not exists(PATH) then
  io.write("generating ", PATH, " ... ")
  io.flush()
  local variants = {}
  local seed = 12345
  local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648 return seed / 2147483648 end
  for v = 1, 12 do
    local parts = {}
    local r0 = 150 + 10 * v
    for y = 0, NY - 1 do
      local row = {}
      for x = 0, NX - 1 do
        local dx, dy = x - 256, y - 256
        local d2 = dx * dx + dy * dy
        local val
        if d2 > 240 * 240 then val = -1000
        elseif d2 > r0 * r0 then val = 40 + ((x * 7 + y * 3 + v) % 30)
        else val = 300 + (x + y) % 200 end
        row[x + 1] = val + math.floor(rnd() * 24) - 12
      end
      parts[y + 1] = string.pack(string.rep("<i2", NX), table.unpack(row))
    end
    variants[v] = table.concat(parts)
  end
  local slices = {}
  for z = 1, NZ do slices[z] = variants[(z * 7) % #variants + 1] end
  local t = lunet.core.from_bytes(table.concat(slices), { 1, NZ, NY, NX }, "i16")
  slices, variants = nil, nil
  collectgarbage()
  image.write(PATH, t, { sitk = { spacing = { 0.8, 0.8, 1.5 }, origin = { 0, 0, 0 },
    direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } } })
  print("done")
end

local function best(f, n)
  local b = math.huge
  for _ = 1, n do
    collectgarbage()
    local t0 = now()
    f()
    local dt = now() - t0
    if dt < b then b = dt end
  end
  return b
end

local size = io.open(PATH, "rb"):seek("end")
local t_gzip = best(function() assert(os.execute("gzip -dc '" .. PATH .. "' > /dev/null")) end, 3)
local img
local t_read = best(function() img = image.read(PATH); img = nil end, 3)
local ratio = t_read / t_gzip
local cpu = "unknown"
local p = io.popen("lscpu 2>/dev/null | grep 'Model name'")
if p then cpu = (p:read("a") or ""):gsub("Model name:%s*", ""):gsub("%s+$", ""); p:close() end
local line = string.format("io.lua: 512x512x500 int16 .nii.gz (%.0f MB compressed): gzip -dc %.3f s, "
  .. "lunet.io.image.read %.3f s, ratio %.2f (goal <= 1.5) [%s, %s]", size / 1e6, t_gzip, t_read, ratio, cpu,
  os.date("!%Y-%m-%d"))
print(line)
local f = io.open("bench/RESULTS.md", "a")
if f then f:write("- ", line, "\n") f:close() end
