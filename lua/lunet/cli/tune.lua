-- `lunet tune [--device D] [--fraction F]`: tunes CLBlast's SGEMM kernel for one device with
-- clblast_tuner_xgemm (package clblast-utils) and stores the best parameters where Lunet applies
-- them on every later run (they take precedence over the built-in table).
-- `lunet tune --kernels [--quick]`: tunes Lunet's own convolution kernels (lunet.tuner) into the
-- device's tunables file; `--list` prints every kernel tunable, its value and where it comes from.
-- `lunet tune --igemm PLANS [-c CONFIG]`: tunes the implicit GEMM's tile (GPUs, mixed precision) per GEMM
-- shape of one training step of that plan's network.
local core = require "lunet.core"
local args = require "lunet.cli.args"

local M = args.command({ summary = "tune CLBlast SGEMM and Lunet's kernels for a device and cache the parameters" })

function M.parser()
  local p = args.parser("tune", [[
Without --kernels or --list: tunes CLBlast's SGEMM kernel for one device with clblast_tuner_xgemm (package
clblast-utils) and stores the best parameters where Lunet applies them on every later run.
--kernels: times Lunet's convolution kernels' tunables and saves the fastest into the device's tunables file.
--igemm PLANS: runs one training step of the plan's network (configuration -c, default 3d_fullres; mixed
precision: float16 activations on the implicit GEMM, as training on a GPU does), then times every GEMM shape
it ran on each work-group tile and saves the fastest per shape (conv.igemm_tile@<shape>).
--list: prints every kernel tunable, its value and where it comes from.]])
  p:option("--device", "device index (lunet.devices()); default: LUNET_DEVICE or the first GPU"):argname("D")
    :convert(args.int("--device", 0))
  p:option("--fraction", "share of CLBlast's random search space to try (default 0.02; 1.0 is exhaustive and slow)")
    :argname("F"):convert(function(s)
      local n = tonumber(s)
      if not n or not (n > 0 and n <= 1) then return nil, "--fraction needs a number in (0, 1], got " .. s end
      return n
    end)
  p:flag("--show", "print where the current CLBlast parameters come from and exit")
  p:flag("--kernels", "time Lunet's convolution kernels' tunables on this device and save the fastest")
  p:flag("--quick", "with --kernels: small layers (a first look; the full set takes minutes on a CPU)")
  p:option("--igemm", "tune the implicit GEMM's tile per GEMM shape of this plans file's network"):argname("PLANS")
  p:option("-c", "with --igemm: the configuration (default 3d_fullres)"):argname("CONFIG")
  p:option("--channels", "with --igemm: input channels (default 1)"):argname("N"):convert(args.int("--channels", 1))
  p:option("--classes", "with --igemm: output classes incl. background (default 2)"):argname("N")
    :convert(args.int("--classes", 2))
  p:option("--tiles", "with --igemm: the tiles to try, comma-separated (default all)"):argname("LIST")
  p:option("--budget", "with --igemm: seconds of tuning, largest GEMMs first (default: no limit)"):argname("S")
    :convert(args.number("--budget", true))
  p:flag("--list", "print the kernel tunables, their values and where each comes from")
  return p
end

local function shell_quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "tune", argv)
  if not o then return code end
  local device, fraction, show, kernels, quick, list = o.device, o.fraction, o.show, o.kernels, o.quick, o.list
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
  if o.igemm then
    local tuner = require "lunet.tuner"
    local ok, plans = pcall(require("lunet.util.json").read, o.igemm)
    if not ok then error(("--igemm: cannot read the plans file %s (%s)"):format(o.igemm, plans), 0) end
    local tiles
    if o.tiles then
      tiles = {}
      for t in o.tiles:gmatch("[^,]+") do tiles[#tiles + 1] = t end
    end
    local step = tuner.network_step(plans, o.c or "3d_fullres", { device = index, channels = o.channels,
      classes = o.classes })
    local r = tuner.tune_igemm({ step = step, device = index, tiles = tiles, budget_s = o.budget, log = print })
    print(("%d GEMM shapes tuned; saved to %s"):format(#r.results, r.path))
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
