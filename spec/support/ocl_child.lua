-- The child process of spec/ocl_robust_spec.lua: one scenario per run, chosen by arg[1], run under the limits the
-- spec sets (ulimit -v) or repeatedly (exit races). Errors propagate: lua5.4 prints them and exits with 1.
--   probe              prints "vm_before <bytes>", "vm_after <bytes>" (mapped address space before/after the
--                      default device starts) and "device <name>"
--   alloc MIB          allocates device tensors of MIB MiB until one fails (the failure ends the process)
--   predict            predicts the fixture case with the fixture network (spec/fixtures/predict)
--   nosync [exit]      enqueues device work and ends without waiting for it (with "exit": os.exit(0), no close)
--   async_exit         starts an asynchronous training step and exits while it runs (os.exit(0), no close)
--   shutdown           lunet.core.shutdown() with tensors alive, then uses them: every use fails with a message
--   fork_error         a forked child (core.proc) that ends in a Lua error: its exit must not touch the parent's
--                      OpenCL state (it waited on the parent's queues and hung); the parent goes on using the device
local lunet = require "lunet"
local core = lunet.core

local function vm()
  local f = assert(io.open("/proc/self/statm"))
  local pages = f:read("n")
  f:close()
  return pages * 4096
end

local mode = arg[1]
if mode == "probe" then
  print("vm_before " .. vm())
  local d = core.default_device()
  core.finish()
  print("vm_after " .. vm())
  print("device " .. core.devices()[d + 1].name)
elseif mode == "alloc" then
  local mib = tonumber(arg[2])
  local keep = {}
  for i = 1, 1 << 20 do
    keep[i] = core.zeros({ mib, 1024, 256 }, "f32", true)
    io.stdout:write(i, " ")
    io.stdout:flush()
  end
elseif mode == "predict" then
  local json = require "lunet.util.json"
  local FX = "spec/fixtures/predict/"
  local nplans = json.read(FX .. "net_plans.json")
  local net = lunet.net(nplans, "3d_fullres", 1, 3)
  net:load(FX .. "net.pth")
  local img = lunet.io.npy.read(FX .. "case_img.npy")
  local m = { forward = function(x) return net:forward(x)[1] end }
  local seg = lunet.predict.image({ m }, img, { spacing = json.read(FX .. "cases.json").spacing },
    { plans = nplans, configuration = "3d_fullres", dataset_json = json.read(FX .. "dataset.json"), disable_tta = true })
  print("predicted " .. seg:numel())
elseif mode == "nosync" then
  local n = 384
  local a = core.zeros({ n, n }, "f32", true)
  local b = core.zeros({ n, n }, "f32", true)
  local c = core.zeros({ n, n }, "f32", true)
  for _ = 1, 8 do
    core.ops.gemm(c, a, b)
    core.ops.add(a, b, c)
  end
  if arg[2] == "exit" then os.exit(0) end
elseif mode == "async_exit" then
  local plans = lunet.planner.read("spec/fixtures/plans/ct_iso/nnUNetPlans.json")
  local kw = plans.configurations["2d"].architecture.arch_kwargs
  for s = 1, kw.n_stages do kw.features_per_stage[s] = math.min(8, 2 << (s - 1)) end
  local net = lunet.net(plans, "2d", 1, 2, { seed = 7 })
  local x = core.zeros({ 2, 1, 64, 64 }, "f32")
  local y = core.zeros({ 2, 1, 64, 64 }, "f32")
  core.async.train_step(net.core, x, y, net:train_opts({ data = x, target = y, lr = 0.01 }))
  os.exit(0)
elseif mode == "shutdown" then
  local a = core.zeros({ 64, 64 }, "f32", true)
  local b = core.zeros({ 64, 64 }, "f32", true)
  core.ops.add(a, b, a)
  core.shutdown()
  core.shutdown() -- idempotent
  assert(core.is_shut_down())
  local function fails(f, ...)
    local ok, err = pcall(f, ...)
    assert(not ok, "expected an error after shutdown")
    assert(tostring(err):find("shut down", 1, true), tostring(err))
  end
  fails(core.zeros, { 4 }, "f32", true)
  fails(core.ops.add, a, b, a)
  fails(core.ops.gemm, a, a, b)
  fails(function() return a:to_host() end)
  fails(core.finish)
  a, b = nil, nil
  collectgarbage()
  collectgarbage()
  print("shutdown ok")
elseif mode == "fork_error" then
  local t = core.zeros({ 256, 256 }, "f32", true)
  core.ops.add(t, t, t)
  core.finish()
  local pid = core.proc.fork()
  if pid == 0 then error("the forked child fails") end
  local ok, code = core.proc.wait(pid)
  core.ops.add(t, t, t)
  core.finish()
  print("child " .. tostring(ok) .. " " .. tostring(code) .. ", parent ok")
else
  error("ocl_child: unknown mode " .. tostring(mode))
end
