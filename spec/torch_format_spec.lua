-- PyTorch checkpoints and zip archives: files written by real torch.save / zipfile
-- (scripts/fixtures/make_torch_fixtures.py), the values they hold, corruption, and Lunet's own writer.
local core = require "lunet.core"
local cjson = require "cjson"
local tmp = require "spec.support.tmp"
local V = require "spec.support.torch_values"
local P, zip = core.pickle, core.zip

local FIX = "spec/fixtures/torch/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function spit(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
local expected = cjson.decode(slurp(FIX .. "expected.json"))

-- Compares a pickle.Tensor with a described torch tensor (dtype, shape, flat values).
local function check_tensor(t, e, what)
  assert.are.equal(P.Tensor, getmetatable(t), what)
  assert.are.equal(e.dtype, t.dtype, what)
  assert.are.same(e.shape, t.shape, what)
  local data = P.tensor_data(t)
  local flat = data:flat()
  assert.are.equal(#e.flat, #flat, what)
  for i = 1, #flat do
    local want = e.flat[i]
    if type(want) == "string" then want = math.tointeger(tonumber(want)) or tonumber(want) end
    if e.dtype == "int64" then
      -- exact: compare the raw little-endian bytes
      local raw = t:bytes()
      assert.are.equal(math.tointeger(tonumber(e.flat[i])), (string.unpack("<i8", raw, 8 * (i - 1) + 1)), what .. "[" .. i .. "]")
    else
      assert.are.equal(want, flat[i], what .. "[" .. i .. "]")
    end
  end
end

describe("torch_load", function()
  it("reads every dtype torch writes, exact values", function()
    local d = P.torch_load(FIX .. "dtypes.pt")
    assert.is_true(P.is_ordered(d))
    assert.are.same({ "float32", "float16", "bfloat16", "float64", "int64", "int32", "int16", "int8", "uint8", "bool" }, P.keys(d))
    for name, e in pairs(expected.dtypes) do check_tensor(d[name], e, name) end
    -- the lunet tensors tensor_data gives: bf16 becomes f32, bool u8
    assert.are.equal("f32", P.tensor_data(d.bfloat16).dtype)
    assert.are.equal("u8", P.tensor_data(d.bool).dtype)
    assert.are.equal("f16", P.tensor_data(d.float16).dtype)
    -- conversion on request
    local h = P.tensor_data(d.float16, "float32")
    assert.are.equal("f32", h.dtype)
    assert.are.same(expected.dtypes.float16.flat, h:flat())
    assert.are.equal(2 * 5, #d.float16:bytes())
  end)

  it("reads views: strides, storage offsets and shared storages", function()
    local d = P.torch_load(FIX .. "views.pt")
    for name, e in pairs(expected.views) do
      check_tensor(d[name], e, name)
      assert.are.same(e.stride, d[name].stride, name)
      assert.are.equal(e.offset, d[name].offset, name)
      assert.are.equal(e.requires_grad, d[name].requires_grad, name)
    end
    assert.are.equal(false, d.base.requires_grad)
    assert.are.equal(true, d.param.requires_grad) -- an nn.Parameter, through _rebuild_parameter
  end)

  it("reads plain values, numpy values and torch.device", function()
    local v = P.torch_load(FIX .. "values.pt")
    local e = expected.values
    assert.are.equal(P.None, v.none)
    assert.are.equal(true, v.t)
    assert.are.equal(false, v.f)
    assert.are.equal(math.maxinteger, v.big)
    assert.are.equal(math.mininteger, v.small)
    assert.are.equal(-5, v.neg)
    assert.are.equal(math.tointeger(e.i40), v.i40)
    assert.are.equal("integer", math.type(v.i40))
    assert.are.equal(0.1, v.float)
    assert.are.equal(math.huge, v.inf)
    assert.are.equal(e.text, v.text)
    assert.are.equal(P.List, getmetatable(v.list))
    assert.are.equal(3, v.list.n)
    assert.are.equal(P.None, v.list[2][2][2])
    assert.are.equal(P.Tuple, getmetatable(v.tuple))
    assert.are.same({ 1, 2.5, "three" }, { v.tuple[1], v.tuple[2], v.tuple[3] })
    assert.are.equal(0, v.empty_tuple.n)
    assert.are.equal("set", P.typeof(v.set))
    local s = { v.set[1], v.set[2], v.set[3] }
    table.sort(s)
    assert.are.same({ 1, 2, 3 }, s)
    assert.are.equal("a", v.frozenset[1])
    assert.is_true(P.is_ordered(v.od))
    assert.are.same({ "z", "a", "m" }, P.keys(v.od))
    assert.are.equal("zero", v.int_keys[0])
    assert.are.equal("minus seven", v.int_keys[-7])
    assert.are.equal("bytes", P.typeof(v.bytes))
    assert.are.equal(e.bytes_hex, (v.bytes.data:gsub(".", function(c) return string.format("%02x", c:byte()) end)))
    assert.are.equal(e.np_f64, v.np_f64)
    assert.are.equal(-42, v.np_i64)
    assert.are.equal("ndarray", P.typeof(v.np_arr))
    assert.are.equal("int64", v.np_arr.dtype)
    assert.are.same({ 2, 3 }, v.np_arr.shape)
    local ints = { string.unpack("<i8<i8<i8<i8<i8<i8", v.np_arr.data) }
    ints[7] = nil
    assert.are.same(e.np_arr, ints)
    assert.are.equal("float32", v.np_f32_arr.dtype)
    assert.are.same({ 0.5, 1.5, 9 }, { string.unpack("<f<f", v.np_f32_arr.data) })
    assert.are.equal("device", P.typeof(v.cpu))
    assert.are.equal("cpu", v.cpu.type)
    assert.is_nil(v.cpu.index)
    assert.are.equal("cuda", v.cuda1.type)
    assert.are.equal(1, v.cuda1.index)
  end)

  it("accepts storages saved from a GPU (location cuda:0)", function()
    local d = P.torch_load(FIX .. "cuda_location.pt")
    assert.are.same({ 1, 2, 3 }, P.tensor_data(d.w):flat())
  end)

  it("reads an nnU-Net checkpoint under its archive folder", function()
    local c = P.torch_load(FIX .. "fold_0/checkpoint_final.pth")
    local e = expected.checkpoint
    assert.is_true(P.is_ordered(c.network_weights))
    local n = 0
    for name, t in pairs(c.network_weights) do
      n = n + 1
      check_tensor(t, e.weights[name], name)
    end
    local ne = 0
    for _ in pairs(e.weights) do ne = ne + 1 end
    assert.are.equal(ne, n)
    check_tensor(c.optimizer_state.state[0].momentum_buffer, e.momentum_0, "momentum")
    local pg = c.optimizer_state.param_groups[1]
    assert.are.same(e.params, { table.unpack(pg.params, 1, pg.params.n) })
    assert.are.equal(0.01, pg.lr)
    assert.are.equal(true, pg.nesterov)
    assert.are.equal(P.None, c.grad_scaler_state)
    assert.are.equal(0.5125, c._best_ema)
    assert.are.equal(2, c.current_epoch)
    assert.are.equal("nnUNetTrainer", c.trainer_name)
    assert.are.equal("3d_fullres", c.init_args.configuration)
    assert.are.equal("cuda", c.init_args.device.type)
    assert.are.equal(P.Tuple, getmetatable(c.inference_allowed_mirroring_axes))
    assert.are.equal(3, c.inference_allowed_mirroring_axes.n)
    assert.are.same({ 0.5, 0.625 }, { c.logging.mean_fg_dice[1], c.logging.mean_fg_dice[2] })
  end)

  it("refuses corrupted, truncated and foreign files with the file name", function()
    local dir = tmp.dir()
    local good = slurp(FIX .. "dtypes.pt")
    -- flip one byte inside the float32 storage (data/0 holds the float32 tensor)
    local z = zip.open(FIX .. "dtypes.pt")
    local names = z:names()
    z:close()
    local first_storage
    for _, n in ipairs(names) do if n:match("/data/0$") then first_storage = n end end
    assert.is_truthy(first_storage)
    local stored = P.tensor_data(P.torch_load(FIX .. "dtypes.pt").float32):bytes()
    local at = good:find(stored, 1, true)
    assert.is_truthy(at)
    local p = dir .. "/flipped.pt"
    spit(p, good:sub(1, at) .. string.char(good:byte(at + 1) ~ 0x40) .. good:sub(at + 2))
    local ok, err = pcall(P.torch_load, p)
    assert.is_false(ok)
    assert.matches(p, err, 1, true)
    assert.matches("entry " .. first_storage .. ": CRC mismatch (stored 0x", err, 1, true)
    assert.matches("the file is corrupted", err, 1, true)
    -- truncated: the directory is gone
    spit(p, good:sub(1, #good - 100))
    ok, err = pcall(P.torch_load, p)
    assert.is_false(ok)
    assert.matches(p, err, 1, true)
    -- truncated in the middle: the directory points past the end
    spit(p, good:sub(1, 200) .. good:sub(-300))
    ok, err = pcall(P.torch_load, p)
    assert.is_false(ok)
    assert.matches(p, err, 1, true)
    -- a legacy (non-zip) torch file
    spit(p, "\128\2\138\10lunet")
    ok, err = pcall(P.torch_load, p)
    assert.is_false(ok)
    assert.matches("legacy", err, 1, true)
    -- a zip that is no checkpoint
    ok, err = pcall(P.torch_load, FIX .. "zip64.zip")
    assert.is_false(ok)
    assert.matches("not a torch checkpoint", err, 1, true)
    ok, err = pcall(P.torch_load, dir .. "/missing.pt")
    assert.is_false(ok)
    assert.matches("missing.pt", err, 1, true)
    tmp.remove(dir)
  end)
end)

describe("torch_save", function()
  it("writes byte-identical output to the committed file torch.load checked", function()
    local dir = tmp.dir()
    local p = dir .. "/lunet_written.pt"
    P.torch_save(p, V.checkpoint())
    assert.are.equal(slurp(FIX .. "lunet_written.pt"), slurp(p))
    tmp.remove(dir)
  end)

  it("round-trips a torch checkpoint: values, dtypes, views and shared storages", function()
    local dir = tmp.dir()
    for _, f in ipairs({ "dtypes.pt", "views.pt", "fold_0/checkpoint_final.pth" }) do
      local a = P.torch_load(FIX .. f)
      local p = dir .. "/rt.pth"
      P.torch_save(p, a)
      local b = P.torch_load(p)
      local function same(x, y, path)
        assert.are.equal(P.typeof(x), P.typeof(y), path)
        local k = P.typeof(x)
        if k == "tensor" then
          assert.are.equal(x.dtype, y.dtype, path)
          assert.are.same(x.shape, y.shape, path)
          assert.are.same(x.stride, y.stride, path)
          assert.are.equal(x.offset, y.offset, path)
          assert.are.equal(x:bytes(), y:bytes(), path)
        elseif k == "dict" then
          assert.are.same(P.keys(x), P.keys(y), path)
          assert.are.equal(P.is_ordered(x), P.is_ordered(y), path)
          for key, v in pairs(x) do same(v, y[key], path .. "." .. tostring(key)) end
        elseif k == "list" or k == "tuple" or k == "set" then
          assert.are.equal(x.n, y.n, path)
          for i = 1, x.n do same(x[i], y[i], path .. "[" .. i .. "]") end
        elseif k == "device" then
          assert.are.same({ x.type, x.index }, { y.type, y.index }, path)
        elseif k ~= "ndarray" then
          assert.are.equal(x, y, path)
        end
      end
      same(a, b, f)
    end
    -- the shared storage of views.pt stays one storage: four views, one data/ entry (plus the parameter's)
    P.torch_save(dir .. "/views.pt", P.torch_load(FIX .. "views.pt"))
    local z = zip.open(dir .. "/views.pt")
    local storages = 0
    for _, n in ipairs(z:names()) do if n:match("^views/data/%d+$") then storages = storages + 1 end end
    z:close()
    assert.are.equal(2, storages)
    tmp.remove(dir)
  end)

  it("writes lunet tensors and pickle.tensor values; one storage for one tensor used twice", function()
    local dir = tmp.dir()
    local t = core.from_bytes(string.pack("<f<f<f<f", 1, 2, 3, 4), { 2, 2 }, "f32")
    local p = dir .. "/w.pt"
    P.torch_save(p, P.dict { a = t, b = t, c = P.tensor { dtype = "int8", shape = { 3 }, data = "\1\2\255" } })
    local back = P.torch_load(p)
    assert.are.equal(back.a, back.b) -- one object, as torch memoizes it
    assert.are.same({ 1, 2, 3, 4 }, P.tensor_data(back.a):flat())
    assert.are.same({ 1, 2, -1 }, P.tensor_data(back.c):flat())
    local z = zip.open(p)
    local names = z:names()
    assert.are.same({ "w/data.pkl", "w/.format_version", "w/.storage_alignment", "w/byteorder", "w/data/0", "w/data/1",
      "w/version", "w/.data/serialization_id" }, names)
    assert.are.equal("3\n", z:read("w/version"))
    assert.are.equal("little", z:read("w/byteorder"))
    z:close()
    -- atomic: no temporary file left behind
    local ls = io.popen("ls " .. tmp.quote(dir)):read("a")
    assert.are.equal("w.pt\n", ls)
    local ok, err = pcall(P.torch_save, dir .. "/bad.pt", { f = function() end })
    assert.is_false(ok)
    assert.matches("bad.pt", err, 1, true)
    assert.are.equal("w.pt\n", io.popen("ls " .. tmp.quote(dir)):read("a"))
    tmp.remove(dir)
  end)
end)

describe("zip", function()
  it("reads a ZIP64 archive (stored and deflate entries)", function()
    local z = zip.open(FIX .. "zip64.zip")
    assert.are.same({ "stored.txt", "dir/deflated.bin" }, z:names())
    assert.are.equal(expected.zip64["stored.txt"], z:read("stored.txt"))
    local d = z:read("dir/deflated.bin")
    assert.are.equal(expected.zip64.deflated_len, #d)
    assert.are.equal(string.char(0, 1, 2, 3), d:sub(1, 4))
    assert.are.equal(expected.zip64.deflated_len, z:size("dir/deflated.bin"))
    local dir = tmp.dir()
    z:extract("dir/deflated.bin", dir .. "/x.bin")
    assert.are.equal(d, slurp(dir .. "/x.bin"))
    local ok, err = pcall(z.read, z, "nope")
    assert.is_false(ok)
    assert.matches("no entry nope", err, 1, true)
    z:close()
    tmp.remove(dir)
  end)

  it("writes stored (64-byte aligned) and deflate archives that it reads back", function()
    local dir = tmp.dir()
    spit(dir .. "/src.bin", string.rep("abc", 1000))
    for _, deflate in ipairs({ false, true }) do
      local p = dir .. "/out.zip"
      zip.write(p, { { name = "a/data.txt", data = "hello" }, { name = "big.bin", file = dir .. "/src.bin" }, { name = "empty", data = "" } },
        { deflate = deflate })
      local z = zip.open(p)
      assert.are.same({ "a/data.txt", "big.bin", "empty" }, z:names())
      assert.are.equal("hello", z:read("a/data.txt"))
      assert.are.equal(string.rep("abc", 1000), z:read("big.bin"))
      assert.are.equal("", z:read("empty"))
      z:close()
      local raw = slurp(p)
      if not deflate then
        local at = raw:find("hello", 1, true)
        assert.are.equal(0, (at - 1) % 64)
      else
        assert.is_true(#raw < 1500)
      end
    end
    tmp.remove(dir)
  end)

  it("writes and reads a ZIP64 end of central directory (70000 entries)", function()
    local dir = tmp.dir()
    local entries = {}
    for i = 1, 70000 do entries[i] = { name = "e" .. i, data = tostring(i) } end
    zip.write(dir .. "/many.zip", entries)
    local raw = slurp(dir .. "/many.zip")
    assert.is_truthy(raw:find("PK\6\6", 1, true)) -- the ZIP64 record
    local z = zip.open(dir .. "/many.zip")
    local names = z:names()
    assert.are.equal(70000, #names)
    assert.are.equal("e70000", names[70000])
    assert.are.equal("69999", z:read("e69999"))
    z:close()
    tmp.remove(dir)
  end)

  it("checks the CRC on extract and leaves no file behind", function()
    local dir = tmp.dir()
    local p = dir .. "/c.zip"
    zip.write(p, { { name = "x", data = string.rep("z", 100) } })
    local raw = slurp(p)
    local at = raw:find("zzzz", 1, true)
    spit(p, raw:sub(1, at + 9) .. "Y" .. raw:sub(at + 11))
    local z = zip.open(p)
    local ok, err = pcall(z.extract, z, "x", dir .. "/x.out")
    assert.is_false(ok)
    assert.matches(p .. ": entry x: CRC mismatch", err, 1, true)
    assert.is_nil(io.open(dir .. "/x.out"))
    ok, err = pcall(z.read, z, "x")
    assert.is_false(ok)
    assert.matches("the file is corrupted", err, 1, true)
    z:close()
    tmp.remove(dir)
  end)
end)

describe("lunet.io.torch", function()
  it("moves state_dicts between torch files and lunet tensors", function()
    local T = require "lunet.io.torch"
    local c = T.load(FIX .. "fold_0/checkpoint_final.pth")
    local list = T.state_dict_tensors(c.network_weights)
    assert.are.same(P.keys(c.network_weights), (function() local n = {} for i, e in ipairs(list) do n[i] = e.name end return n end)())
    assert.are.equal("f32", list[1].tensor.dtype)
    local dir = tmp.dir()
    T.save(dir .. "/sd.pth", T.state_dict(list))
    local back = T.load(dir .. "/sd.pth")
    assert.is_true(P.is_ordered(back))
    for _, e in ipairs(list) do assert.are.equal(e.tensor:bytes(), back[e.name]:bytes(), e.name) end
    tmp.remove(dir)
  end)
end)
