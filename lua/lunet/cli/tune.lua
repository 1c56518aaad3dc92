-- `lunet tune [--device D] [--fraction F]`: tunes CLBlast's SGEMM kernel for one device with
-- clblast_tuner_xgemm (package clblast-utils) and stores the best parameters where Lunet applies
-- them on every later run (they take precedence over the built-in table).
-- `lunet tune --kernels [--quick]`: tunes Lunet's own convolution kernels (lunet.tuner) into the
-- device's tunables file; `--list` prints every kernel tunable, its value and where it comes from.
local core = require "lunet.core"

local M = {
  summary = "tune CLBlast SGEMM and Lunet's kernels for a device and cache the parameters",
  usage = [[
usage: lunet tune [--device D] [--fraction F] [--show]
       lunet tune --kernels [--device D] [--quick]
       lunet tune --list [--device D]
  --device D     device index (lunet.devices()); default: LUNET_DEVICE or the first GPU
  --fraction F   share of CLBlast's random search space to try (default 0.02; 1.0 is exhaustive and slow)
  --show         print where the current CLBlast parameters come from and exit
  --kernels      time Lunet's convolution kernels' tunables on this device and save the fastest
  --quick        with --kernels: small layers (a first look; the full set takes minutes on a CPU)
  --list         print the kernel tunables, their values and where each comes from]],
}

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.run(args)
  local device, fraction, show, kernels, quick, list
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then print(M.usage) return 0
    elseif a == "--device" then device = tonumber(args[i + 1]); i = i + 1
    elseif a == "--fraction" then fraction = tonumber(args[i + 1]); i = i + 1
    elseif a == "--show" then show = true
    elseif a == "--kernels" then kernels = true
    elseif a == "--quick" then quick = true
    elseif a == "--list" then list = true
    else error("unknown option '" .. a .. "'\n" .. M.usage, 0) end
    i = i + 1
  end
  local index = core.default_device(device)
  local dev = core.devices()[index + 1]
  if list then
    print(("device %d: %s (kernels chosen as %s)"):format(index, dev.name, core.tune.class(index)))
    for _, t in ipairs(core.tune.list(index)) do
      print(("  %-18s %-8s %-14s %s"):format(t.name, tostring(t.value), t.source, t.doc))
    end
    print("tunables file: " .. core.tune.path(index))
    return 0
  end
  if kernels then
    local r = require("lunet.tuner").tune({ device = index, quick = quick, log = print })
    for _, e in ipairs(r.results) do print(("%s = %d"):format(e.name, e.best)) end
    print("saved to " .. r.path)
    return 0
  end
  local source, path = core.blas_tuning(index)
  if show then
    print(string.format("device %d: %s\nparameters: %s\ntuning file: %s", index, dev.name, source, path))
    return 0
  end
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute("mkdir -p " .. shell_quote(dir)))
  local cmd = string.format("cd %s && clblast_tuner_xgemm -platform %d -device %d -precision 32 -fraction %g -runs 2",
    shell_quote(dir), dev.platform_index, dev.platform_device, fraction or 0.02)
  io.stderr:write("lunet tune: running " .. cmd .. "\n(this takes minutes on a CPU)\n")
  local ok = os.execute(cmd .. " > " .. shell_quote(dir .. "/tuner.log") .. " 2>&1")
  local f = io.open(dir .. "/clblast_xgemm_1_32.json")
  if not ok or not f then
    error("clblast_tuner_xgemm failed (is clblast-utils installed?); log: " .. dir .. "/tuner.log", 0)
  end
  local text = f:read("a")
  f:close()
  local best = require("lunet.util.json").decode(text, dir .. "/clblast_xgemm_1_32.json")
  local params = best.best_parameters or (best.results and best.results[1] and best.results[1].parameters)
  if type(params) == "table" then
    local parts = {}
    for k, v in pairs(params) do parts[#parts + 1] = k .. "=" .. math.tointeger(v) end
    table.sort(parts)
    params = table.concat(parts, " ")
  end
  if type(params) ~= "string" or not params:find("=") then
    error("could not find the best parameters in " .. dir .. "/clblast_xgemm_1_32.json", 0)
  end
  os.execute("mkdir -p " .. shell_quote(path:match("^(.*)/")))
  require("lunet.util.fs").write_atomic(path, string.format("# written by lunet tune for %s (%s)\nXgemm %s\n",
    dev.name, dev.driver, params))
  print(string.format("tuned %s: Xgemm %s\nsaved to %s (best %s GFLOP/s in the tuner)", dev.name, params, path,
    tostring(best.best_gflops or best.gflops or "?")))
  os.execute("rm -rf " .. shell_quote(dir))
  return 0
end

return M
