-- Python pickles (lunet.core.pickle): files written by CPython's pickle at protocols 2..5, the
-- allow-list of globals, symbolic globals, hostile input, and Lunet's writer against a blob that
-- pickle.loads checked (scripts/fixtures/make_torch_fixtures.py).
local core = require "lunet.core"
local tmp = require "spec.support.tmp"
local V = require "spec.support.torch_values"
local P = core.pickle

local FIX = "spec/fixtures/torch/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local PP = "nnunetv2.postprocessing.remove_connected_components.remove_all_but_largest_component_from_segmentation"

describe("pickle", function()
  for proto = 2, 5 do
    it("reads CPython's protocol " .. proto .. " pickles", function()
      local v = P.load_file(FIX .. "values_p" .. proto .. ".pkl")
      assert.are.equal(P.None, v.none)
      assert.are.equal(true, v.t)
      assert.are.equal(math.maxinteger, v.big)
      assert.are.equal(math.mininteger, v.small)
      assert.are.equal(-5, v.neg)
      assert.are.equal(1 << 40, v.i40)
      assert.are.equal(0.1, v.float)
      assert.are.equal("nnU-Net ✓ héllo", v.text)
      assert.are.equal("list", P.typeof(v.list))
      assert.are.equal("x", v.list[3])
      assert.are.equal("tuple", P.typeof(v.tuple))
      assert.are.equal(2.5, v.tuple[2])
      assert.are.equal(3, v.set.n)
      assert.are.same({ "z", "a", "m" }, P.keys(v.od))
      assert.is_true(P.is_ordered(v.od))
      assert.is_false(P.is_ordered(v))
      assert.are.equal("one", v.int_keys[1])
      assert.are.equal("\0\1\255xyz", v.bytes.data)
      assert.are.equal(0.123456789, v.np_f64)
      assert.are.equal(-42, v.np_i64)
      assert.are.equal("int64", v.np_arr.dtype)
      assert.are.same({ 2, 3 }, v.np_arr.shape)
      assert.are.equal(48, #v.np_arr.data)
    end)
  end

  it("refuses globals outside the allow-list, naming them and the file", function()
    local ok, err = pcall(P.load_file, FIX .. "os_system.pkl")
    assert.is_false(ok)
    assert.matches(FIX .. "os_system.pkl: the pickle names the global os.system, which Lunet does not load (only tensors and plain values are allowed)", err, 1, true)
    ok, err = pcall(P.loads, "\128\4\140\8builtins\140\4eval\147.")
    assert.is_false(ok)
    assert.matches("builtins.eval", err, 1, true)
    -- a symbolic global is a value, never a call
    ok, err = pcall(P.load_file, FIX .. "os_system.pkl", { symbolic_globals = { "os.system" } })
    assert.is_false(ok)
    assert.matches("calls os.system", err, 1, true)
  end)

  it("returns listed globals as pickle.Global values (nnU-Net's postprocessing.pkl)", function()
    local ok, err = pcall(P.load_file, FIX .. "postprocessing.pkl")
    assert.is_false(ok)
    assert.matches(PP, err, 1, true)
    local v = P.load_file(FIX .. "postprocessing.pkl", { symbolic_globals = { PP } })
    assert.are.equal("tuple", P.typeof(v))
    local fn = v[1][1]
    assert.are.equal("global", P.typeof(fn))
    assert.are.equal("nnunetv2.postprocessing.remove_connected_components", fn.module)
    assert.are.equal("remove_all_but_largest_component_from_segmentation", fn.name)
    assert.are.same({ 1, 2 }, { v[2][1].labels_or_regions[1], v[2][1].labels_or_regions[2] })
    -- written back, it reads the same
    local back = P.loads(P.dumps(v, 4), { symbolic_globals = { PP } })
    assert.are.equal(fn.name, back[1][1].name)
  end)

  it("writes byte-identical output to the protocol-4 blob pickle.loads checked", function()
    assert.are.equal(slurp(FIX .. "lunet_written.pkl"), P.dumps(V.plain(), 4))
    local dir = tmp.dir()
    P.save_file(dir .. "/p.pkl", V.plain(), 4)
    assert.are.equal(slurp(FIX .. "lunet_written.pkl"), slurp(dir .. "/p.pkl"))
    tmp.remove(dir)
  end)

  for proto = 2, 5 do
    it("round-trips every value type at protocol " .. proto, function()
      local v = P.loads(P.dumps(V.plain(), proto), { symbolic_globals = { PP } })
      assert.are.equal(P.None, v.none)
      assert.are.same({ true, false }, { v.flags[1], v.flags[2] })
      local ints = { 0, 1, -1, 255, 256, 65535, 65536, -2147483648, 2147483647, 1 << 40, math.mininteger, math.maxinteger }
      for i, x in ipairs(ints) do
        assert.are.equal(x, v.ints[i])
        assert.are.equal("integer", math.type(v.ints[i]))
      end
      assert.are.equal("float", math.type(v.floats[3])) -- 1.0 stays a float
      assert.are.equal(-1e300, v.floats[2])
      assert.are.equal("héllo wörld ✓", v.text)
      assert.are.equal("\0\1\255abc", v.bytes.data)
      assert.are.equal("two", v.tuple[2])
      assert.are.equal(0, v.tuple[3].n)
      assert.are.equal(3, v.set.n)
      assert.are.equal("a", v.frozen[1])
      assert.are.same({ "a", "b" }, P.keys(v.od))
      assert.is_true(P.is_ordered(v.od))
      assert.are.equal("int key", v[7])
      assert.are.equal("cpu", v.device.type)
      assert.are.equal("global", P.typeof(v.fn))
      assert.are.equal("int64", v.array.dtype)
      assert.are.same({ 2, 2 }, v.array.shape)
      assert.are.same({ "a", "z" }, P.keys(v.plain))
      assert.are.equal(3, v.plain.a.n)
      assert.are.equal(v.shared1, v.shared2) -- identity survives
    end)
  end

  it("keeps dict order, insertion through P.set and plain assignment, and plain-table conversion", function()
    local d = P.dict()
    P.set(d, "b", 1)
    d.a = 2
    P.set(d, 0, "zero")
    P.set(d, "b", 3)
    assert.are.same({ "b", "a", 0 }, P.keys(d))
    local seen = {}
    for k, v in pairs(d) do seen[#seen + 1] = tostring(k) .. "=" .. tostring(v) end
    assert.are.same({ "b=3", "a=2", "0=zero" }, seen)
    d.a = nil
    assert.are.same({ "b", 0 }, P.keys(d))
    local back = P.loads(P.dumps(d))
    assert.are.same({ "b", 0 }, P.keys(back))
    assert.are.same({ "a", "b", "c" }, P.keys(P.dict { c = 1, a = 2, b = 3 }))
    assert.are.equal("list", P.typeof({ 1, 2 }))
    assert.are.equal("dict", P.typeof({}))
    assert.are.equal("dict", P.typeof({ 1, 2, x = 3 }))
    local l = P.loads(P.dumps({ 1, 2.0, "x" }))
    assert.are.equal("list", P.typeof(l))
    assert.are.equal("float", math.type(l[2]))
    assert.are.equal("dict", P.typeof(P.loads(P.dumps({}))))
    for _, x in ipairs({ P.None, true, 1, 1.5, "s", P.bytes("b"), P.list {}, P.tuple {}, P.dict(), P.pyset {}, P.device("cpu"),
      P.global("a", "b"), P.array { dtype = "uint8", shape = { 1 }, data = "x" } }) do
      assert.is_string(P.typeof(x))
    end
    assert.are.equal("tensor", P.typeof(P.tensor { dtype = "float32", shape = { 1 }, data = "\0\0\0\0" }))
    assert.are.equal("tensor", P.typeof(core.zeros({ 1 })))
    assert.are.equal("device", P.typeof(P.device("cuda:1")))
    assert.are.equal(1, P.device("cuda:1").index)
  end)

  it("refuses what cannot be written: tensors outside torch_save, bad UTF-8, functions", function()
    assert.has_error(function() P.dumps({ core.zeros({ 1 }) }) end)
    local ok, err = pcall(P.dumps, { "\255\254" })
    assert.is_false(ok)
    assert.matches("UTF%-8", err)
    ok = pcall(P.dumps, { print })
    assert.is_false(ok)
    local t = P.tuple { 1 }
    t[1] = t
    t.n = 1
    ok, err = pcall(P.dumps, t)
    assert.is_false(ok)
    assert.matches("contains itself", err, 1, true)
    -- a list containing itself is fine (memo)
    local l = P.list {}
    l[1] = l
    l.n = 1
    local back = P.loads(P.dumps(l))
    assert.are.equal(back, back[1])
  end)

  it("survives hostile input: truncation, deep nesting, bad memo, huge lengths, int overflow", function()
    local good = slurp(FIX .. "values_p4.pkl")
    for cut = 1, #good - 1, 7 do
      local ok, err = pcall(P.loads, good:sub(1, cut), { name = "cut.pkl" })
      assert.is_false(ok)
      assert.matches("cut.pkl", err, 1, true)
    end
    local ok, err = pcall(P.loads, "\128\2" .. string.rep("(", 100000) .. ".")
    assert.is_false(ok)
    assert.matches("deeper", err, 1, true)
    -- deep nesting of lists through APPEND: the conversion stops at its limit
    ok, err = pcall(P.loads, "\128\2" .. string.rep("]", 2000) .. string.rep("a", 1999) .. ".")
    assert.is_false(ok)
    assert.matches("nest deeper", err, 1, true)
    ok, err = pcall(P.loads, "\128\2h\5.")
    assert.is_false(ok)
    assert.matches("memo", err, 1, true)
    ok, err = pcall(P.loads, "\128\4\141\255\255\255\255\255\255\255\127.")
    assert.is_false(ok)
    assert.matches("truncated", err, 1, true)
    ok, err = pcall(P.loads, "\128\2\138\9\0\0\0\0\0\0\0\0\1.")
    assert.is_false(ok)
    assert.matches("int64", err, 1, true)
    assert.are.equal(math.mininteger, P.loads("\128\2\138\9\0\0\0\0\0\0\0\128\255."))
    ok, err = pcall(P.loads, "\128\2Q.")
    assert.is_false(ok)
    assert.matches("stack underflow", err, 1, true)
    ok, err = pcall(P.loads, "\128\2NQ.")
    assert.is_false(ok)
    assert.matches("persistent id", err, 1, true)
    ok, err = pcall(P.loads, "\128\9N.")
    assert.is_false(ok)
    assert.matches("protocol 9", err, 1, true)
    ok, err = pcall(P.loads, "\128\2NN.")
    assert.is_false(ok)
    assert.matches("left on the stack", err, 1, true)
    -- a cycle through a dict reads as a Lua cycle
    local cyc = P.loads("\128\2}q\0X\1\0\0\0sh\0s.")
    assert.are.equal(cyc, cyc.s)
  end)
end)
