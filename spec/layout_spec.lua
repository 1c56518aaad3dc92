-- The tree keeps the shape docs/architecture.md draws: Lua modules set no globals, the C core reads
-- the environment in one place, nothing in lunet.core exists for the tests only, and the conv
-- dispatcher stays a dispatcher.
local function lines_of(cmd)
  local p = assert(io.popen(cmd))
  local out = {}
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  return out
end

describe("layout", function()
  it("Lua modules and rules set no global variables", function()
    local offenders = {}
    for _, f in ipairs(lines_of("find lua rules -name '*.lua' | sort")) do
      for _, l in ipairs(lines_of("luac5.4 -p -l " .. f .. " 2>&1")) do
        local name = l:match('SETTABUP.*; _ENV "([%w_]+)"')
        if name then offenders[#offenders + 1] = f .. ": " .. name end
      end
    end
    assert.are.same({}, offenders)
  end)

  it("the C core reads the environment in csrc/core/env.c only", function()
    local hits = lines_of("grep -rln 'getenv *(' csrc --include='*.c' --include='*.h' | grep -v '^csrc/fuzz/' | sort")
    assert.are.same({ "csrc/core/env.c" }, hits)
    assert.are.same({}, lines_of("grep -rln 'setenv *(' csrc --include='*.c' | grep -v '^csrc/fuzz/'"))
  end)

  it("keeps the float64 references and kernel switches out of lunet.core", function()
    local core = require "lunet.core"
    for _, name in ipairs({ "ref_fwd", "ref_bwd_data", "ref_bwd_weight", "set_algo", "set_fwd", "set_wino" }) do
      assert.is_nil(core.conv[name], "lunet.core.conv." .. name)
    end
    assert.is_nil(core.setenv)
    assert.is_function(require("lunet.testing").conv_ref)
  end)

  it("keeps csrc/ops/conv.c a dispatcher over csrc/ops/conv/", function()
    local n = #lines_of("cat csrc/ops/conv.c")
    assert.is_true(n < 450, "csrc/ops/conv.c has " .. n .. " lines")
    for _, f in ipairs({ "base", "gemm", "direct", "wino", "s2rows", "dgrad", "wgrad" }) do
      assert.is_true(#lines_of("ls csrc/ops/conv/" .. f .. ".c 2>/dev/null") == 1, f .. ".c")
    end
  end)
end)
