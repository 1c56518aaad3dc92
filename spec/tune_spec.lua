-- Kernel tunables per device (lunet.core.tune): values by name, the layers they come from (class
-- defaults, the tunables file, LUNET_<NAME> overrides, run-time sets), the forced GPU class choosing
-- other kernels on PoCL, and the tuner writing its winners into the file.
local core = require "lunet.core"
local tune = core.tune

local tmp = require "spec.support.tmp"
local shell_quote = tmp.quote

-- Runs a Lua snippet in a child lua5.4 with `env` set (tunables' file and environment layers are read
-- when a process first uses its device); returns its stdout and whether it succeeded.
local function child(env, code)
  local parts = {}
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. shell_quote(v) end
  local script = os.tmpname()
  local f = assert(io.open(script, "w"))
  f:write(code)
  f:close()
  local p = io.popen(table.concat(parts, " ") .. " lua5.4 " .. shell_quote(script) .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  os.remove(script)
  return out, ok
end

local tmpdir = tmp.dir

describe("kernel tunables", function()
  after_each(function() tune.reset() end)

  it("reads and sets values by name, and says where each comes from", function()
    local class = tune.class()
    local device_type = core.devices()[core.default_device() + 1].type == "cpu" and "cpu" or "gpu"
    assert.are.equal(os.getenv("LUNET_DEVICE_CLASS") or device_type, class)
    local by_name = {}
    for _, t in ipairs(tune.list()) do by_name[t.name] = t end
    assert.are.equal(class == "cpu" and 16 or 8, tune.get("conv.vx"))
    assert.are.equal("auto", tune.get("conv.wino"))
    assert.are.equal("class default", by_name["conv.vx"].source)
    tune.set("conv.wino_cich", 16)
    assert.are.equal(16, tune.get("conv.wino_cich"))
    tune.set("conv.algo", "gemm")
    assert.are.equal("gemm", tune.get("conv.algo"))
    for _, t in ipairs(tune.list()) do by_name[t.name] = t end
    assert.are.equal("set", by_name["conv.wino_cich"].source)
    tune.set("conv.wino_cich", nil)
    assert.are.equal("auto", tune.get("conv.wino_cich"))
    tune.reset()
    assert.are.equal("auto", tune.get("conv.algo"))
  end)

  it("refuses unknown names and values with a message naming them", function()
    local ok, err = pcall(tune.get, "conv.warp_size")
    assert.is_false(ok)
    assert.matches("no kernel tunable 'conv.warp_size'", err)
    ok, err = pcall(tune.set, "conv.algo", "winograd")
    assert.is_false(ok)
    assert.matches("conv.algo: 'winograd' is not auto, direct|gemm", err, 1, true)
    ok, err = pcall(tune.set, "conv.vx", -5)
    assert.is_false(ok)
    assert.matches("conv.vx: %-5", err)
  end)

  it("takes the class's defaults when the GPU class is forced, and back", function()
    tune.set("device.class", "gpu")
    assert.are.equal("gpu", tune.class())
    assert.are.equal(8, tune.get("conv.vx"))
    assert.are.equal(4, tune.get("conv.wgrad_vx"))
    assert.are.equal(256, tune.get("loss.wg"))
    tune.set("device.class", "cpu")
    assert.are.equal(16, tune.get("conv.vx"))
    assert.are.equal(64, tune.get("loss.wg"))
  end)

  it("runs the kernels a GPU would run when the GPU class is forced", function()
    -- a 3x3 stride-1 conv over rows of 32: conv_wino on a CPU, conv_direct on a GPU
    local code = [[
      local core = require "lunet.core"
      local x = core.zeros({ 1, 8, 16, 32 }, "f32", true)
      local w = core.zeros({ 8, 8, 3, 3 }, "f32", true)
      local y = core.zeros({ 1, 8, 16, 32 }, "f32", true)
      core.conv.fwd(x, w, nil, y, { k = 3 })
      core.finish()
      local names = {}
      for _, e in ipairs(core.profile()) do names[#names + 1] = e.name end
      print(core.tune.class() .. ": " .. table.concat(names, " "))
    ]]
    local env = { LUNET_PROFILE = "1", LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
    local out, ok = child(env, code)
    assert.is_true(ok, out)
    if out:match("^cpu:") then assert.matches("conv_wino", out) end
    env.LUNET_DEVICE_CLASS = "gpu"
    out, ok = child(env, code)
    assert.is_true(ok, out)
    assert.matches("^gpu: .*conv_direct", out)
    assert.is_nil(out:match("conv_wino"), out)
  end)

  it("applies the tunables file, lets LUNET_<NAME> override it, and names a bad file's line", function()
    local dir = tmpdir()
    local env = { LUNET_CACHE_DIR = dir, LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
    local path = child(env, [[io.write(require("lunet.core").tune.path())]])
    assert.are.equal(dir .. "/tunables-", path:sub(1, #dir + 10))
    -- LUNET_TUNABLES names the file for one run (and the kernels stay in the shared program cache)
    path = dir .. "/my-tunables.txt"
    env = { LUNET_TUNABLES = path, LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
    local f = assert(io.open(path, "w"))
    f:write("# a tuned device\nconv.wino_cich 16   # measured\nconv.algo gemm\n")
    f:close()
    local show = [[
      local tune = require("lunet.core").tune
      local src = {}
      for _, t in ipairs(tune.list()) do src[t.name] = t.source end
      print(tune.get("conv.wino_cich"), src["conv.wino_cich"], tune.get("conv.algo"))
    ]]
    local out = child(env, show)
    assert.are.equal("16\tfile\tgemm\n", out)
    env.LUNET_CONV_WINO_CICH = "32"
    out = child(env, show)
    assert.are.equal("32\tenvironment\tgemm\n", out)
    env.LUNET_CONV_WINO_CICH = nil
    f = assert(io.open(path, "w"))
    f:write("conv.wino_cich 16\nconv.wino_chich 8\n")
    f:close()
    local ok
    out, ok = child(env, show)
    assert.is_falsy(ok)
    assert.matches("no kernel tunable 'conv.wino_chich'", out, 1, true)
    assert.matches(path .. " line 2", out, 1, true)
    tmp.remove(dir)
  end)

  it("keeps values per key (name@key) in the file and at run time, below a plain run-time setting", function()
    local dir = tmpdir()
    local path = dir .. "/keyed.txt"
    local env = { LUNET_TUNABLES = path, LUA_PATH = os.getenv("LUA_PATH"), LUA_CPATH = os.getenv("LUA_CPATH") }
    local f = assert(io.open(path, "w"))
    f:write("conv.igemm_tile 64x128\nconv.igemm_tile@fwd.ptx16-hh.32x4194304x864 32x128  # tuned\n")
    f:close()
    local out, ok = child(env, [[
      local tune = require("lunet.core").tune
      local k1, k2 = "conv.igemm_tile@fwd.ptx16-hh.32x4194304x864", "conv.igemm_tile@dgrad.ptx16-hh.32x4194304x1728"
      local src = {}
      for _, t in ipairs(tune.list()) do src[t.name] = t.source .. "=" .. tostring(t.value) end
      print(tune.get(k1), tune.get(k2), src[k1], src[k2])
      tune.set(k2, "128x128")
      print(tune.get(k2))
      tune.set("conv.igemm_tile", "32x64")
      print(tune.get(k1), tune.get(k2))
      tune.set("conv.igemm_tile", nil)
      print(tune.save())
    ]])
    assert.is_true(ok, out)
    local lines = {}
    for l in out:gmatch("[^\n]+") do lines[#lines + 1] = l end
    -- a key's file entry over the plain file value; a key without one takes the plain value
    assert.are.equal("32x128\t64x128\tfile=32x128\tnil", lines[1])
    assert.are.equal("128x128", lines[2])
    assert.are.equal("32x64\t32x64", lines[3])
    assert.are.equal(path, lines[4])
    f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    assert.matches("\nconv.igemm_tile 64x128\n", text, 1, true)
    assert.matches("\nconv.igemm_tile@fwd.ptx16-hh.32x4194304x864 32x128\n", text, 1, true)
    assert.matches("\nconv.igemm_tile@dgrad.ptx16-hh.32x4194304x1728 128x128\n", text, 1, true)
    -- LUNET_CONV_IGEMM_TILE (a tuning run's override) wins over the file's keys, not over run-time keys
    env.LUNET_CONV_IGEMM_TILE = "128x64"
    out = child(env, [[
      local tune = require("lunet.core").tune
      print(tune.get("conv.igemm_tile@fwd.ptx16-hh.32x4194304x864"))
      tune.set("conv.igemm_tile@fwd.ptx16-hh.32x4194304x864", "32x64")
      print(tune.get("conv.igemm_tile@fwd.ptx16-hh.32x4194304x864"))
    ]])
    assert.are.equal("128x64\n32x64\n", out)
    -- a bad key in the file names its line
    env.LUNET_CONV_IGEMM_TILE = nil
    f = assert(io.open(path, "w"))
    f:write("conv.igemm_tile@fwd 64x64\nconv.igemm_tile@ 64x64\n")
    f:close()
    out, ok = child(env, [[require("lunet.core").tune.get("conv.igemm_tile")]])
    assert.is_falsy(ok)
    assert.matches(path .. " line 2", out, 1, true)
    tmp.remove(dir)
  end)

  it("tunes the implicit GEMM's tile per GEMM shape of a plan's training step (lunet tune --igemm)", function()
    local dir = tmpdir()
    local cjson = require "cjson"
    local f = assert(io.open("spec/fixtures/plans/ct_iso/nnUNetPlans.json"))
    local plans = cjson.decode(f:read("a"))
    f:close()
    -- a small 3d_fullres: 2 stages of 4 and 8 features, patch 8^3, batch 1
    local conf = plans.configurations["3d_fullres"]
    local kw = conf.architecture.arch_kwargs
    kw.n_stages, kw.features_per_stage = 2, { 4, 8 }
    kw.kernel_sizes, kw.strides = { { 3, 3, 3 }, { 3, 3, 3 } }, { { 1, 1, 1 }, { 2, 2, 2 } }
    kw.n_conv_per_stage, kw.n_conv_per_stage_decoder = { 2, 2 }, { 2 }
    conf.patch_size, conf.batch_size = { 8, 8, 8 }, 1
    local plans_path = dir .. "/plans.json"
    f = assert(io.open(plans_path, "w"))
    f:write(cjson.encode(plans))
    f:close()
    local tunables = dir .. "/tunables.txt"
    -- PoCL: the implicit GEMM forced on (GPUs take it for float16 activations by themselves)
    local env = ("LUNET_TUNABLES=%s LUNET_CONV_IGEMM=1 LUNET_CONV_MMA=fma "):format(shell_quote(tunables))
    local p = io.popen(env .. "scripts/lunet tune --igemm " .. shell_quote(plans_path) ..
      " --tiles 64x64,32x64 2>&1")
    local out = p:read("a")
    local ok = p:close()
    assert.is_true(ok, out)
    local n = tonumber(out:match("(%d+) GEMM shapes tuned; saved to " .. tunables:gsub("%p", "%%%0")))
    assert.is_not_nil(n, out)
    -- forward, backward data and weight gradient of each conv, the transposed conv's three, the heads
    assert.is_true(n >= 12, out)
    f = assert(io.open(tunables))
    local text = f:read("a")
    f:close()
    local keys = 0
    for key, tile in text:gmatch("\nconv%.igemm_tile@(%S+) (%S+)") do
      keys = keys + 1
      assert.truthy(tile == "64x64" or tile == "32x64", key)
      assert.matches("^t?[fdw][a-z]+%.fma%-[fh][fh]%.%d+x%d+x%d+$", key)
    end
    assert.are.equal(n, keys)
    -- the forward of the first conv reads the float32 batch and writes float16 (mixed precision)
    assert.matches("\nconv.igemm_tile@fwd.fma-fh.4x512x27 ", text, 1, true)
    -- a plans file that is not there is named
    p = io.popen(env .. "scripts/lunet tune --igemm " .. shell_quote(dir .. "/none.json") .. " 2>&1")
    out = p:read("a")
    assert.is_falsy(p:close())
    assert.matches("cannot read the plans file " .. dir .. "/none.json", out, 1, true)
    tmp.remove(dir)
  end)

  it("tunes: times each candidate, keeps the fastest and saves it to the file", function()
    local dir = tmpdir()
    local env = { LUNET_TUNABLES = dir .. "/sub/tunables.txt", LUA_PATH = os.getenv("LUA_PATH"),
                  LUA_CPATH = os.getenv("LUA_CPATH") }
    local out, ok = child(env, [[
      local tuner = require "lunet.tuner"
      local r = tuner.tune({ repeats = 1, layers = { { x = { 1, 8, 8, 32 }, cout = 8, k = 3, stride = 1 } },
        space = { { name = "conv.wino_cich", values = { 4, 8 }, pass = "fwd" },
                  { name = "conv.wgrad_chunk", values = { 256, 4096 }, pass = "bwd_weight" } } })
      local e1, e2 = r.results[1], r.results[2]
      assert(e1.times[4] and e1.times[8] and e2.times[256] and e2.times[4096])
      print(r.path, e1.best, e2.best)
    ]])
    assert.is_true(ok, out)
    local path, best1, best2 = out:match("^(%S+)\t(%d+)\t(%d+)\n$")
    assert.is_not_nil(path, out)
    assert.truthy(best1 == "4" or best1 == "8")
    assert.truthy(best2 == "256" or best2 == "4096")
    local f = assert(io.open(path))
    local text = f:read("a")
    f:close()
    assert.matches("\nconv.wino_cich " .. best1 .. "\n", text, 1, true)
    assert.matches("\nconv.wgrad_chunk " .. best2 .. "\n", text, 1, true)
    -- a later process applies them
    out = child(env, [[local t = require("lunet.core").tune print(t.get("conv.wino_cich"), t.get("conv.wgrad_chunk"))]])
    assert.are.equal(best1 .. "\t" .. best2 .. "\n", out)
    tmp.remove(dir)
  end)
end)
