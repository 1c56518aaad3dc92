-- The kernel program cache. Lunet's own binary cache (forced on with LUNET_BINARY_CACHE=1, since the
-- test device is PoCL): a second process loads binaries from disk and compiles nothing. On PoCL by
-- default Lunet leaves caching to PoCL and must not make it compile kernels nobody launches.
local function run(env, code)
  local cmd = string.format("%s lua5.4 -e %q 2>&1", env, code)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

local function tmpdir()
  local dir = os.tmpname()
  os.remove(dir)
  return dir
end

-- Kernel objects PoCL compiled under its cache dir, as "kernel/work-group-size" strings.
local function pocl_objects(dir)
  local found = {}
  for f in io.popen("find " .. dir .. " -name '*.so' 2>/dev/null"):lines() do
    local kernel, wg = f:match("/([%w_]+)/([^/]+)/[%w_]+%.so$")
    if kernel then found[#found + 1] = kernel .. "/" .. wg end
  end
  table.sort(found)
  return found
end

local function is_pocl()
  local core = require "lunet.core"
  local dev = core.devices()[core.default_device() + 1]
  return dev.platform:find("Portable Computing Language") ~= nil
end

describe("program cache", function()
  it("compiles once, then a second process hits the disk cache", function()
    local dir = tmpdir()
    local env = "LUNET_BINARY_CACHE=1 LUNET_CACHE_DIR=" .. dir
    local code = [[
      local l = require "lunet"
      local t = l.core.zeros({100}, "f32", true)
      l.core.ops.fill(t, 1); l.core.ops.scale(t, 2)
      assert(l.core.ops.sum(t) == 200)
      local s = l.core.cache_stats()
      io.write(s.compiles, " ", s.disk_hits, "\n")
    ]]
    local first = run(env, code)
    local c1, h1 = first:match("(%d+) (%d+)")
    assert.is_not_nil(c1, first)
    assert.equal(2, tonumber(c1)) -- elementwise.cl and reduce.cl
    assert.equal(0, tonumber(h1))
    local second = run(env, code)
    local c2, h2 = second:match("(%d+) (%d+)")
    assert.equal(0, tonumber(c2))
    assert.equal(2, tonumber(h2))
    os.execute("rm -rf " .. dir)
  end)

  it("recompiles when a cached binary is corrupt", function()
    local dir = tmpdir()
    local env = "LUNET_BINARY_CACHE=1 LUNET_CACHE_DIR=" .. dir
    local code = [[
      local l = require "lunet"
      local t = l.core.zeros({10}, "f32", true); l.core.ops.fill(t, 3)
      local s = l.core.cache_stats(); io.write(s.compiles, " ", s.disk_hits, "\n")
    ]]
    run(env, code)
    for f in io.popen("ls " .. dir):lines() do
      local h = io.open(dir .. "/" .. f, "wb"); h:write("garbage"); h:close()
    end
    local c, h = run(env, code):match("(%d+) (%d+)")
    assert.equal(1, tonumber(c))
    assert.equal(0, tonumber(h))
    os.execute("rm -rf " .. dir)
  end)

  it("on PoCL leaves caching to PoCL and compiles only the kernels it launches", function()
    if not is_pocl() then pending("the default device is not PoCL") return end
    local ldir, pdir = tmpdir(), tmpdir()
    local env = string.format("LUNET_CACHE_DIR=%s POCL_CACHE_DIR=%s", ldir, pdir)
    local code = [[
      local l = require "lunet"
      local t = l.core.zeros({100}, "f32", true)
      l.core.ops.fill(t, 1); l.core.ops.scale(t, 2)
      assert(l.core.ops.sum(t) == 200)
      io.write("done\n")
    ]]
    local out = run(env, code)
    assert.is_truthy(out:find("done\n"), out)
    local first = pocl_objects(pdir)
    -- elementwise.cl holds a dozen kernels; a program binary request would have compiled each of
    -- them (as "<kernel>/0-0-0"); only fill, scale and the reduction's kernels may be there
    assert.is_true(#first >= 3, table.concat(first, " "))
    for _, o in ipairs(first) do
      local kernel = o:match("^[^/]+")
      assert.is_truthy(kernel:find("^fill") or kernel:find("^scale") or kernel:find("reduce") or kernel:find("sum"),
        "compiled a kernel that was not launched: " .. o)
    end
    local lunet_files = io.popen("ls " .. ldir .. " 2>/dev/null"):read("a")
    assert.equal("", lunet_files)
    -- a second process finds everything in PoCL's cache: no new kernel objects
    out = run(env, code)
    assert.is_truthy(out:find("done\n"), out)
    assert.same(first, pocl_objects(pdir))
    os.execute("rm -rf " .. ldir .. " " .. pdir)
  end)
end)
