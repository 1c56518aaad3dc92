-- Blosc2 .b2nd reading (csrc/fmt/b2nd.c) against files python-blosc2 and nnunetv2 wrote
-- (scripts/fixtures/make_b2nd_fixtures.py): each decodes to the bytes of the .npy blosc2 itself
-- read back, and corrupt or unsupported files fail with a message naming the file.
local lunet = require "lunet"
local b2nd = require "lunet.io.b2nd"
local npy = require "lunet.io.npy"

local FIX = "spec/fixtures/b2nd/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function spit(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end
local function tmpname(suffix) local p = os.tmpname(); os.remove(p); return p .. suffix end

-- name -> what the fixture exercises (the .npy of the same name holds the expected array)
local CASES = {
  nnunet_case = "nnunetv2 save_case data: f32 2x3-D, LZ4HC, filter by trial",
  nnunet_case_seg = "nnunetv2 save_case seg: i16 with -1, LZ4HC",
  next_stage_seg = "nnunetv2 save_seg (predicted_next_stage): u8, ZSTD, chunks from comp_blosc2_params",
  f32_c2_overhang = "f32 2-channel 3-D, chunks and blocks overhanging every axis, index BloscLZ",
  f32_split_zstd = "f32 split into 4 streams per block, ZSTD",
  f32_lz4 = "LZ4, split, shuffle, some chunks stored",
  f32_blosclz = "BloscLZ, split, shuffle",
  f32_zlib = "zlib",
  u8_seg = "u8", i8_seg = "i8", i16_seg = "i16, shuffle", u16_seg = "u16, split",
  f16 = "f16 ('<f2')", f64_2d = "f64 2-D, shuffle in the last filter slot", i32_2d = "i32 2-D",
  zeros_f32 = "all zeros: every chunk a zero special in the index",
  zeros_special = "blosc2.zeros: the index itself a repeated-value chunk",
  const_i16 = "a constant array",
  nan_special = "blosc2.full NaN: repeated-value chunks",
  value_special = "blosc2.full 3.25: repeated-value chunks",
  many_chunks = "110 chunks: a BloscLZ-compressed index",
  random_u8 = "incompressible: stored streams and chunks",
  runs_u8 = "byte-run, zero, compressed and stored streams in one chunk",
}

describe("b2nd", function()
  for name, what in pairs(CASES) do
    it("reads " .. name .. " (" .. what .. ") byte for byte", function()
      local t = b2nd.read(FIX .. name .. ".b2nd")
      local e = npy.read(FIX .. name .. ".npy")
      assert.are.equal(e.dtype, t.dtype)
      assert.are.same(e.shape, t.shape)
      assert.is_true(t:bytes() == e:bytes(), name .. ": bytes differ")
    end)
  end

  it("reads nnunetv2's case with SHUFFLE and with NOFILTER forced to the same array", function()
    local e = npy.read(FIX .. "nnunet_case.npy"):bytes()
    for _, tag in ipairs({ "shuffle", "nofilter" }) do
      assert.is_true(b2nd.read(FIX .. "nnunet_case_" .. tag .. ".b2nd"):bytes() == e, tag)
    end
  end)

  it("is lunet.core.b2nd.read and lunet.io.b2nd.read", function()
    assert.are.same({ 20, 24, 18 }, lunet.core.b2nd.read(FIX .. "next_stage_seg.b2nd").shape)
    assert.are.equal(b2nd, require("lunet.io").b2nd)
  end)

  it("refuses BITSHUFFLE and DELTA with the filter's name", function()
    for _, f in ipairs({ "bitshuffle", "delta" }) do
      local path = FIX .. "unsupported_" .. f .. ".b2nd"
      local ok, err = pcall(b2nd.read, path)
      assert.is_false(ok)
      assert.matches(path, err, 1, true)
      assert.matches("filter " .. f:upper() .. " %(id %d%) is not supported", err)
    end
  end)

  it("names the file when it is missing or not a frame", function()
    local ok, err = pcall(b2nd.read, FIX .. "absent.b2nd")
    assert.is_false(ok)
    assert.matches("absent.b2nd: cannot open", err, 1, true)
    ok, err = pcall(b2nd.read, FIX .. "u8_seg.npy")
    assert.is_false(ok)
    assert.matches("u8_seg.npy: b2nd: ", err, 1, true)
  end)

  it("says truncated for a cut file", function()
    local s = slurp(FIX .. "nnunet_case.b2nd")
    local p = tmpname(".b2nd")
    spit(p, s:sub(1, #s - 100))
    local ok, err = pcall(b2nd.read, p)
    os.remove(p)
    assert.is_false(ok)
    assert.matches(p .. ": b2nd: the frame is " .. #s .. " bytes but the file only " .. (#s - 100) .. " (truncated)", err, 1, true)
  end)

  it("says what is wrong for a flipped magic byte and a broken chunk", function()
    local s = slurp(FIX .. "next_stage_seg.b2nd")
    local p = tmpname(".b2nd")
    spit(p, s:sub(1, 2) .. "X" .. s:sub(4))
    local ok, err = pcall(b2nd.read, p)
    assert.is_false(ok)
    assert.matches(p .. ": b2nd: not a Blosc2 frame", err, 1, true)
    -- the first data chunk's compressed size (header byte 12) made larger than the file
    local hl = string.unpack(">i4", s, 12)
    spit(p, s:sub(1, hl + 12) .. "\255\255" .. s:sub(hl + 15))
    ok, err = pcall(b2nd.read, p)
    os.remove(p)
    assert.is_false(ok)
    assert.matches(p .. ": b2nd: chunk 0: chunk of %d+ bytes runs past the end", err)
  end)

  -- truncations and single-byte corruptions of two small files (nnunetv2's ZSTD seg, and a
  -- BloscLZ/shuffle/split one): either the array or an error naming the file, never a crash
  -- (scripts/asan-specs.sh runs this under AddressSanitizer)
  -- (a stride on the larger file: each try writes a file, slow on a busy disk)
  for name, stride in pairs({ next_stage_seg = 1, f32_blosclz = 7 }) do
    it("survives truncations and byte flips of " .. name .. " (every " .. stride .. " bytes)", function()
      local s = slurp(FIX .. name .. ".b2nd")
      local p = tmpname(".b2nd")
      local fails = 0
      local function try(bytes)
        spit(p, bytes)
        local ok, err = pcall(b2nd.read, p)
        if not ok then
          fails = fails + 1
          assert.matches(p, tostring(err), 1, true)
        end
      end
      local cuts = 0
      for n = 0, #s - 1, stride do try(s:sub(1, n)); cuts = cuts + 1 end
      for i = 1, #s, stride do try(s:sub(1, i - 1) .. string.char(s:byte(i) ~ 0xA5) .. s:sub(i + 1)) end
      os.remove(p)
      assert.is_true(fails >= cuts) -- every truncation at least
    end)
  end
end)
