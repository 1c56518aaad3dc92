-- SGEMM through Lunet (CLBlast with Lunet's tuned parameters) at several sizes, next to CLBlast
-- with its own default parameters on the same device, each in a fresh process of this run.
-- Prints GFLOP/s and the ratio of Lunet's figure to the best the library reached here.
--   lua5.4 bench/gemm.lua [sizes...]      (default 256 512 1024 2048)
local function measure(sizes)
  local lunet = require "lunet"
  local ops = lunet.core.ops
  local out = {}
  for _, n in ipairs(sizes) do
    local a = lunet.core.zeros({n, n}, "f32", true)
    local b = lunet.core.zeros({n, n}, "f32", true)
    local c = lunet.core.zeros({n, n}, "f32", true)
    ops.fill(a, 0.5); ops.fill(b, 0.25)
    ops.gemm(c, a, b); lunet.core.finish() -- warm-up: kernel compile and first launch
    local reps = math.max(2, math.floor(2e9 / (2 * n ^ 3)))
    local best = math.huge
    for _ = 1, 3 do
      local t0 = require("lunet.util.clock").now()
      for _ = 1, reps do ops.gemm(c, a, b) end
      lunet.core.finish()
      local dt = (require("lunet.util.clock").now() - t0) / reps
      best = math.min(best, dt)
    end
    assert(math.abs(c:flat()[1] - 0.125 * n) < 1e-3 * n, "wrong GEMM result")
    out[#out + 1] = string.format("%d %.3f", n, 2 * n ^ 3 / best / 1e9)
  end
  local tuning = lunet.core.blas_tuning()
  print("TUNING " .. tuning)
  for _, l in ipairs(out) do print("RESULT " .. l) end
end

if arg[1] == "--measure" then
  measure(table.move(arg, 2, #arg, 1, {}))
  os.exit(0)
end

local sizes = #arg > 0 and arg or {"256", "512", "1024", "2048"}
local function run(env)
  local cmd = string.format("%s lua5.4 %s --measure %s", env, arg[0], table.concat(sizes, " "))
  local p = assert(io.popen(cmd))
  local res, tuning = {}, "?"
  for line in p:lines() do
    local n, g = line:match("^RESULT (%d+) ([%d.]+)")
    if n then res[tonumber(n)] = tonumber(g) end
    tuning = line:match("^TUNING (.*)") or tuning
  end
  assert(p:close(), "benchmark subprocess failed: " .. cmd)
  return res, tuning
end

local tuned, source = run("")
local defaults = run("LUNET_CLBLAST_DEFAULTS=1")
local dev = require("lunet").devices()[require("lunet").core.default_device() + 1]
print(string.format("device: %s (%s)", dev.name, dev.platform))
print(string.format("lunet tuning: %s", source))
print(string.format("%6s %14s %18s %8s", "n", "lunet GFLOP/s", "clblast-default", "ratio"))
for _, s in ipairs(sizes) do
  local n = tonumber(s)
  local best = math.max(tuned[n], defaults[n])
  print(string.format("%6d %14.1f %18.1f %8.2f", n, tuned[n], defaults[n], tuned[n] / best))
end
