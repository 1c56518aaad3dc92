-- lunet.util.json against files written by Python's json / nnU-Net's save_json (spec/fixtures/dataset/json_*.json,
-- made by scripts/fixtures/make_dataset_fixtures.py).
local json = require "lunet.util.json"

local FIX = "spec/fixtures/dataset/"

local function slurp(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end

local function tmpdir()
  local d = os.tmpname(); os.remove(d); assert(os.execute("mkdir -p '" .. d .. "'")); return d
end

describe("lunet.util.json", function()
  it("re-encodes nnU-Net's save_json output byte for byte (sorted keys, indent 4, NaN, floats, empties)", function()
    local text = slurp(FIX .. "json_sorted.json")
    local v = json.decode(text, "json_sorted.json")
    assert.are.equal(text, json.encode(v, { indent = 4 }))
  end)

  it("keeps file key order with sort_keys=false (dataset.json as generate_dataset_json writes it)", function()
    local text = slurp(FIX .. "json_unsorted.json")
    local v = json.read(FIX .. "json_unsorted.json")
    assert.are.same({ "background", "whole", "core", "ignore" }, json.keys(v.labels))
    assert.are.equal(text, json.encode(v, { indent = 4, sort_keys = false }))
  end)

  it("decodes values with the right Lua types", function()
    local v = json.read(FIX .. "json_sorted.json")
    assert.are.equal("integer", math.type(v.neg))
    assert.are.equal(-42, v.neg)
    assert.are.equal(9007199254740993, v.int_big)
    assert.are.equal("float", math.type(v.zeta[6]))
    assert.are.equal(123456789.125, v.zeta[6])
    assert.are.equal("float", math.type(v.spacing[1]))
    assert.is_true(v.zeta[9] ~= v.zeta[9])            -- NaN
    assert.are.equal(math.huge, v.zeta[10])
    assert.are.equal(-math.huge, v.zeta[11])
    assert.are.equal(json.null, v.bools[3])
    assert.are.equal("ünï €", v.strings[4])
    assert.are.equal("😀", v.strings[6])
    assert.is_true(json.is_array(v.alpha.b))
    assert.is_false(json.is_array(v.alpha.a))
  end)

  it("writes Python's float repr, integers without .0, and Python's one-line separators", function()
    assert.are.equal('[1, 1.0, 0.1, 1e-05, 1e+16, 2.5e-07, NaN, -Infinity]',
      json.encode({ 1, 1.0, 0.1, 1e-5, 1e16, 2.5e-7, 0 / 0, -math.huge }))
    assert.are.equal('{"a": [], "b": {}, "c": {}}', json.encode({ a = json.array(), b = json.object(), c = {} }))
    assert.are.equal('{"1": "x", "2": "y", "10": "z"}', json.encode({ [10] = "z", [1] = "x", [2] = "y", n = nil }))
  end)

  it("names the file, line and column in decode errors", function()
    local d = tmpdir()
    local p = d .. "/bad.json"
    local f = assert(io.open(p, "w")); f:write('{\n  "a": [1, 2,, 3]\n}'); f:close()
    local ok, err = pcall(json.read, p)
    assert.is_false(ok)
    assert.matches(p:gsub("%p", "%%%0") .. ": unexpected character ','  ?at line 2 column 14", err)
    local ok2, err2 = pcall(json.decode, '{"a": 1', "x.json")
    assert.is_false(ok2)
    assert.matches("x.json: expected ',' or '}' at line 1", err2, 1, true)
    assert.has_error(function() json.decode('[1] 2') end)
    assert.has_error(function() json.decode('"abc') end)
    assert.has_error(function() json.decode('01') end)
    os.execute("rm -rf '" .. d .. "'")
  end)

  it("writes atomically, leaving only the target file", function()
    local d = tmpdir()
    json.write(d .. "/out.json", { b = 1, a = { 1.5, 2 } })
    assert.are.equal('{\n    "a": [\n        1.5,\n        2\n    ],\n    "b": 1\n}', slurp(d .. "/out.json"))
    local p = io.popen("ls -A '" .. d .. "'"); local listing = p:read("a"); p:close()
    assert.are.equal("out.json\n", listing)
    -- a failed write (folder missing) raises and leaves nothing behind
    assert.has_error(function() json.write(d .. "/missing/out.json", {}) end)
    os.execute("rm -rf '" .. d .. "'")
  end)

  -- Found or guarded by the json fuzz harness (csrc/fuzz/fuzz_json.c).
  it("refuses nesting deeper than 1000 with a clear error, not a Lua stack overflow", function()
    local ok, err = pcall(json.decode, string.rep("[", 10000) .. string.rep("]", 10000), "deep.json")
    assert.is_false(ok)
    assert.matches("^deep%.json: nesting too deep at line 1 column 1002$", err)
    ok, err = pcall(json.decode, string.rep('{"a":', 5000) .. "1" .. string.rep("}", 5000), "deep.json")
    assert.is_false(ok)
    assert.matches("^deep%.json: nesting too deep", err)
    local deepest = string.rep("[", 999) .. string.rep("]", 999) -- within the limit: decodes and round-trips
    assert.are.equal(deepest, json.encode(json.decode(deepest)))
  end)

  it("refuses to encode stray UTF-8 continuation bytes instead of dropping them", function()
    local v = json.decode('{"\\u0041": 1, "' .. string.char(0x90, 0x8d) .. '": 2}')
    assert.has_error(function() json.encode(v) end, 'json.encode: string is not valid UTF-8: "' .. string.char(0x90, 0x8d) .. '"')
    assert.has_error(function() json.encode({ string.char(0x80) }) end)
  end)
end)
