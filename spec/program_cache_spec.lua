-- The kernel program cache: a second process loads binaries from disk and compiles nothing.
local function run(cache_dir, code)
  local cmd = string.format("LUNET_CACHE_DIR=%s lua5.4 -e %q 2>&1", cache_dir, code)
  local p = io.popen(cmd)
  local out = p:read("a")
  p:close()
  return out
end

describe("program cache", function()
  it("compiles once, then a second process hits the disk cache", function()
    local dir = os.tmpname()
    os.remove(dir)
    local code = [[
      local l = require "lunet"
      local t = l.core.zeros({100}, "f32", true)
      l.core.ops.fill(t, 1); l.core.ops.scale(t, 2)
      assert(l.core.ops.sum(t) == 200)
      local s = l.core.cache_stats()
      io.write(s.compiles, " ", s.disk_hits, "\n")
    ]]
    local first = run(dir, code)
    local c1, h1 = first:match("(%d+) (%d+)")
    assert.is_not_nil(c1, first)
    assert.equal(2, tonumber(c1)) -- elementwise.cl and reduce.cl
    assert.equal(0, tonumber(h1))
    local second = run(dir, code)
    local c2, h2 = second:match("(%d+) (%d+)")
    assert.equal(0, tonumber(c2))
    assert.equal(2, tonumber(h2))
    os.execute("rm -rf " .. dir)
  end)

  it("recompiles when a cached binary is corrupt", function()
    local dir = os.tmpname()
    os.remove(dir)
    local code = [[
      local l = require "lunet"
      local t = l.core.zeros({10}, "f32", true); l.core.ops.fill(t, 3)
      local s = l.core.cache_stats(); io.write(s.compiles, " ", s.disk_hits, "\n")
    ]]
    run(dir, code)
    for f in io.popen("ls " .. dir):lines() do
      local h = io.open(dir .. "/" .. f, "wb"); h:write("garbage"); h:close()
    end
    local c, h = run(dir, code):match("(%d+) (%d+)")
    assert.equal(1, tonumber(c))
    assert.equal(0, tonumber(h))
    os.execute("rm -rf " .. dir)
  end)
end)
