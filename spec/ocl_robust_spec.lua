-- The OpenCL layer under memory limits and at exit (#26 item 5), each scenario in a child process
-- (spec/support/ocl_child.lua): under `ulimit -v`, allocation and prediction fail with a message naming the
-- bytes and the device and exit with 1 (PoCL aborted on an assertion, exit 134); a driver that cannot load in
-- the address space is reported as out of memory, not as "no OpenCL device"; a script that enqueues device work
-- and exits without waiting for it exits cleanly, however it exits; after lunet.core.shutdown() device work fails
-- with a message.
local ROOT = os.getenv("PWD") or "."
local CHILD = ROOT .. "/spec/support/ocl_child.lua"

-- Under AddressSanitizer the process reserves terabytes of shadow address space: `ulimit -v` cannot apply.
local ASAN = (os.getenv("LD_PRELOAD") or ""):find("asan", 1, true) ~= nil

local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- Runs the child with arguments under an optional address-space limit (KiB); returns exit code, output.
local function child(args, limit_kib)
  local cmd = (limit_kib and ("ulimit -v " .. math.floor(limit_kib) .. "; ") or "") .. "exec timeout 300 lua5.4 " .. q(CHILD) ..
    " " .. args
  local p = assert(io.popen("sh -c " .. q(cmd) .. " 2>&1", "r"))
  local out = p:read("a")
  local _, _, code = p:close()
  return code, out
end

local probe
local function get_probe()
  if probe then return probe end
  local code, out = child("probe")
  assert.are.equal(0, code, out)
  probe = { before = tonumber(out:match("vm_before (%d+)")), after = tonumber(out:match("vm_after (%d+)")),
    device = out:match("device ([^\n]+)") }
  return probe
end

local function kib(bytes) return bytes // 1024 end

describe("OpenCL under an address-space limit (ulimit -v)", function()
  local function it_limit(name, f)
    if ASAN then pending(name .. " (not under AddressSanitizer: its shadow memory needs an unlimited address space)")
    else it(name, f) end
  end

  it_limit("allocation fails with 'out of memory: <bytes> bytes for <tensor> on <device>', exit code 1", function()
    local p = get_probe()
    local code, out = child("alloc 16", kib(p.after) + 300 * 1024) -- room for a few 16 MiB tensors, not for 100
    assert.are.equal(1, code, out)
    assert.truthy(out:find("out of memory: 16777216 bytes for tensor f32 16x1024x256 on " .. p.device, 1, true), out)
    assert.truthy(out:find("ulimit -v", 1, true), out)
    assert.truthy(out:match("^1 2 "), "some tensors fit first: " .. out)
  end)

  it_limit("prediction fails with a message naming the bytes and the device, exit code 1", function()
    local p = get_probe()
    -- the device starts, but less than the reserve kept for the driver is left: the first buffer fails
    local code, out = child("predict", kib(p.after) + 40 * 1024)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("out of memory: %d+ bytes for [^\n]+ on " .. p.device:gsub("%p", "%%%0")), out)
    -- and with room it predicts
    code, out = child("predict", kib(p.after) + 400 * 1024)
    assert.are.equal(0, code, out)
    assert.truthy(out:find("predicted 8400", 1, true), out)
  end)

  it_limit("a driver that cannot load in the address space is out of memory, not 'no OpenCL device found'", function()
    local p = get_probe()
    local code, out = child("alloc 1", kib(p.before) + 24 * 1024)
    assert.are.equal(1, code, out)
    assert.truthy(out:find("out of memory: no OpenCL device started", 1, true), out)
    assert.truthy(out:find("ulimit -v", 1, true), out)
    assert.falsy(out:find("no OpenCL device found", 1, true), out)
  end)
end)

describe("OpenCL at exit", function()
  it("a script that enqueues device work and ends without waiting exits with 0, 10 times in 10", function()
    local codes = {}
    for i = 1, 10 do codes[i] = (child("nosync")) end
    assert.are.same({ 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }, codes)
  end)

  it("so does one that calls os.exit(0) without closing its state, 5 times in 5", function()
    local codes = {}
    for i = 1, 5 do codes[i] = (child("nosync exit")) end
    assert.are.same({ 0, 0, 0, 0, 0 }, codes)
  end)

  it("and one that exits while an asynchronous training step runs (the teardown waits for it)", function()
    local codes = {}
    for i = 1, 3 do codes[i] = (child("async_exit")) end
    assert.are.same({ 0, 0, 0 }, codes)
  end)

  it("a forked child that ends in an error exits without touching the parent's devices", function()
    local code, out = child("fork_error")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("child false 1, parent ok", 1, true), out)
  end)

  it("after lunet.core.shutdown() device work fails with a message and live tensors are still freed", function()
    local code, out = child("shutdown")
    assert.are.equal(0, code, out)
    assert.truthy(out:find("shutdown ok", 1, true), out)
  end)
end)
