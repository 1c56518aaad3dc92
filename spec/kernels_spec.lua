-- Kernel sources and their shared includes: `#include "NAME"` (NAME a path under kernels/) is expanded
-- by Lunet (csrc/cl/program.c) before the driver builds a program, for embedded files and LUNET_KERNELS
-- overrides alike, each file once per program.
local core = require "lunet.core"

local tmpdir = require("spec.support.tmp").dir

local function write(dir, name, text)
  assert(os.execute("mkdir -p " .. (dir .. "/" .. name):match("^(.*)/")))
  local f = assert(io.open(dir .. "/" .. name, "w"))
  f:write(text)
  f:close()
end

local function count(s, plain)
  local n, i = 0, 1
  while true do
    local a, b = s:find(plain, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

local function run(env, code)
  local p = io.popen(string.format("%s lua5.4 -e %q 2>&1", env, code))
  local out = p:read("a")
  p:close()
  return out
end

-- The source of `file` as built with LUNET_KERNELS=dir (a child process: settings are read from its
-- environment), or nil and the error.
local function source_under(dir, file)
  local out = run("LUNET_KERNELS=" .. dir, ([[
    local ok, res = pcall(require("lunet.core").kernel_source, %q)
    io.write(ok and "OK" or "ERR", "\n", tostring(res))]]):format(file))
  local tag, rest = out:match("^(%u+)\n(.*)$")
  if tag == "OK" then return rest end
  return nil, rest or out
end

describe("kernel includes", function()
  it("expand each file once, includes of includes first, with #line marks", function()
    local dir = tmpdir()
    write(dir, "t/c.cl", "#define C_DONE 1\n")
    write(dir, "t/b.cl", '#include "t/c.cl"\nint b_body;\n')
    write(dir, "t/a.cl", '// a\n#include "t/b.cl"\n  #  include "t/c.cl"\n#include "t/a.cl"\nint a_body;\n')
    local src = assert(source_under(dir, "t/a.cl"))
    assert.equal(1, count(src, "#define C_DONE 1"))
    assert.equal(1, count(src, "int b_body;"))
    assert.equal(0, count(src, "#include"))
    assert.is_true(src:find("C_DONE", 1, true) < src:find("b_body", 1, true))
    assert.is_truthy(src:find('#line 1 "t/c.cl"\n#define C_DONE 1\n', 1, true))
    assert.is_truthy(src:find('#line 5 "t/a.cl"\nint a_body;\n', 1, true))
    assert.equal("// a\n", src:sub(1, 5)) -- the file itself starts unmarked
    os.execute("rm -rf " .. dir)
  end)

  it("name the including file when an include is missing, and stop runaway nesting", function()
    local dir = tmpdir()
    write(dir, "t/m.cl", '#include "common/no_such_file.cl"\n')
    local src, err = source_under(dir, "t/m.cl")
    assert.is_nil(src)
    assert.is_truthy(err:find("kernels/t/m.cl", 1, true), err)
    assert.is_truthy(err:find('#include "common/no_such_file.cl": no such kernel file', 1, true), err)
    for i = 0, 20 do write(dir, ("t/d%d.cl"):format(i), ('#include "t/d%d.cl"\n'):format(i + 1)) end
    src, err = source_under(dir, "t/d0.cl")
    assert.is_nil(src)
    assert.is_truthy(err:find("nests deeper than", 1, true), err)
    os.execute("rm -rf " .. dir)
  end)

  it("hold every direct kernel once over the split files, each file its own, and the preludes once", function()
    local files = {
      ["conv/pack.cl"] = {"pack_weights", "pad_input", "pack_phases"},
      ["conv/fwd.cl"] = {"conv_direct", "conv_rows", "conv_cvec"},
      ["conv/convT.cl"] = {"convT_cvec"},
      ["conv/dgrad.cl"] = {"dgrad_cvec", "dgrad_rows", "dgrad_strided", "dgrad_s2x"},
      ["conv/wgrad.cl"] = {"wgrad_direct", "transpose_dy", "wgrad_cvec", "reduce_cvec"},
    }
    local all, n = {}, 0
    for file, kernels in pairs(files) do
      local src = core.kernel_source(file)
      for _, k in ipairs(kernels) do
        assert.equal(1, count(src, "__kernel void " .. k .. "("), file .. ": " .. k)
        assert.is_nil(all[k], k .. " in two files")
        all[k] = file
        n = n + 1
      end
      assert.equal(#kernels, count(src, "__kernel"), file)
    end
    assert.equal(15, n)
    for _, file in ipairs({"conv/pack.cl", "conv/fwd.cl", "conv/wgrad.cl", "conv/conv.cl"}) do
      local src = core.kernel_source(file)
      assert.equal(1, count(src, "#define KV "), file)
      assert.equal(0, count(src, "#include"), file)
    end
    for _, file in ipairs({"loss/loss.cl", "loss/softmax.cl"}) do
      assert.equal(1, count(core.kernel_source(file), "typedef float vf;"), file)
    end
  end)

  it("take an override of an included file alone, and rebuild for it", function()
    -- common/vw.cl overridden under LUNET_KERNELS, loss/softmax.cl (which includes it) embedded: the
    -- override's STOREF doubles what softmax writes, so each voxel's probabilities sum to 2
    local dir, cache = tmpdir(), tmpdir()
    local vw = core.kernel_source("common/vw.cl")
    local n
    vw, n = vw:gsub("#define STOREF%(v, p, i%) %(%(p%)%[i%] = %(v%)%)", "#define STOREF(v, p, i) ((p)[i] = 2.0f * (v))")
    assert.equal(1, n)
    vw, n = vw:gsub("vstore8%(%(v%), 0, %(p%) %+ %(i%)%)", "vstore8(2.0f * (v), 0, (p) + (i))")
    assert.equal(1, n)
    write(dir, "common/vw.cl", vw)
    local code = [[
      local l = require "lunet"
      local N, C, S = 2, 3, 67
      local t = {}
      for i = 1, N * C * S do t[i] = math.sin(i) end
      local x = l.tensor(t, {shape = {N, C, S}, dtype = "f32"}):to_device()
      local y = l.core.zeros({N, C, S}, "f32", true)
      l.core.nn.softmax(y, x)
      local s = l.core.cache_stats()
      io.write(("%.4f %d %d\n"):format(l.core.ops.sum(y) / (N * S), s.compiles, s.disk_hits))
    ]]
    local env = "LUNET_BINARY_CACHE=1 LUNET_CACHE_DIR=" .. cache
    local function parse(out)
      local sum, c, h = out:match("([%d.]+) (%d+) (%d+)")
      assert.is_not_nil(sum, out)
      return tonumber(sum), tonumber(c), tonumber(h)
    end
    local s1 = parse(run(env, code))
    assert.is_true(math.abs(s1 - 1) < 1e-4, tostring(s1))
    local s2, c2, h2 = parse(run(env, code)) -- the same source: the disk cache answers
    assert.is_true(math.abs(s2 - 1) < 1e-4, tostring(s2))
    assert.equal(0, c2)
    assert.is_true(h2 > 0)
    local s3, c3 = parse(run(env .. " LUNET_KERNELS=" .. dir, code)) -- an included file changed: rebuilt
    assert.is_true(math.abs(s3 - 2) < 1e-4, tostring(s3))
    assert.is_true(c3 > 0)
    os.execute("rm -rf " .. dir .. " " .. cache)
  end)
end)
