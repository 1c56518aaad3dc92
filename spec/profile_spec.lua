-- LUNET_PROFILE=1 (csrc/cl/profile.c): device time per kernel from OpenCL event profiling, read lazily (no
-- clFinish per launch), and the table printed to stderr at exit.
local function q(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function child(env, code)
  local parts = {}
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. q(v) end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local p = io.popen(table.concat(parts, " ") .. " lua5.4 " .. q(script) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  os.remove(script)
  return out, ok
end

local code = [[
  local core = require "lunet.core"
  local t = core.zeros({ 1 << 20 }, "f32", true)
  for _ = 1, 5 do core.ops.fill(t, 1) end
  local a = core.zeros({ 64, 64 }, "f32", true)
  local c = core.zeros({ 64, 64 }, "f32", true)
  core.ops.gemm(c, a, a)
  core.profile() -- without an argument it keeps the entries
  for _, e in ipairs(core.profile()) do
    print(("entry %s %d %.9f"):format(e.name, e.count, e.seconds))
  end
]]

describe("LUNET_PROFILE", function()
  local env = { LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH"),
                LUNET_CACHE_DIR = os.getenv("LUNET_CACHE_DIR") }

  it("charges each kernel's device time from its event and prints the table at exit", function()
    env.LUNET_PROFILE = "1"
    local out, ok = child(env, code)
    assert.is_true(ok, out)
    local fill = out:match("entry fill_f32 (%d+) ([%d.]+)")
    assert.is_not_nil(fill, out)
    local n, secs = out:match("entry fill_f32 (%d+) ([%d.]+)")
    assert.is_true(tonumber(n) >= 5, out)
    assert.is_true(tonumber(secs) > 0, out)
    assert.matches("entry clblast_sgemm%S* 1 ", out)
    -- the exit table: header, the fill row with its launch count, a total
    assert.matches("lunet profile %(device time from OpenCL events", out)
    assert.matches("\nfill_f32%s+" .. n .. "%s+[%d.]+%s+[%d.]+%s+[%d.]+%%", out)
    assert.matches("\ntotal%s+%d+%s+[%d.]+", out)
  end)

  it("is off by default: no entries, no table", function()
    env.LUNET_PROFILE = nil
    local out, ok = child(env, code)
    assert.is_true(ok, out)
    assert.is_nil(out:match("entry "), out)
    assert.is_nil(out:match("lunet profile"), out)
  end)
end)
