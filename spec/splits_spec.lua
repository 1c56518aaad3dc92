-- 5-fold splits must equal nnunetv2's generate_crossval_split (fixtures from
-- scripts/fixtures/make_split_fixtures.py), including the 80:20 fallback and numpy's MT19937 stream.
local json = require "lunet.util.json"
local splits = require "lunet.splits"
local core = require "lunet.core"

local FIX = "spec/fixtures/splits/"

local function plain(t) -- strip json metatables for deep comparison
  local o = {}
  for k, v in pairs(t) do o[k] = type(v) == "table" and plain(v) or v end
  return o
end

describe("splits", function()
  it("numpy MT19937 raw outputs, permutation and random_sample match", function()
    local fx = json.read(FIX .. "mt19937.json")
    local m = core.rng.mt19937(12345)
    for i, v in ipairs(fx.seed12345_raw) do assert.are.equal(v, m:next32(), "output " .. i) end
    assert.are.same(plain(fx.seed4242_perm1000), core.rng.mt_permutation(4242, 1000))
    local m7 = core.rng.mt19937(7)
    for i, v in ipairs(fx.seed7_random_sample) do assert.are.equal(v, m7:double(), "sample " .. i) end
  end)

  for _, n in ipairs { "5", "7", "10", "23", "100", "heart" } do
    it("5 folds of " .. n .. " cases equal nnunetv2's", function()
      local fx = json.read(FIX .. "splits_" .. n .. ".json")
      -- feed the ids unsorted: generate sorts them as nnU-Net does before splitting
      local ids = plain(fx.ids)
      for i = 1, #ids // 2 do ids[i], ids[#ids - i + 1] = ids[#ids - i + 1], ids[i] end
      local s = splits.generate(ids)
      assert.are.same(plain(fx.splits), plain(s))
    end)
  end

  it("reference test vector (MSD Heart fold 0)", function()
    local fx = json.read(FIX .. "splits_heart.json")
    local s = splits.generate(plain(fx.ids))
    assert.are.same({ "la_007", "la_016", "la_021", "la_024" }, plain(s[1].val))
  end)

  it("fallback 80:20 split for a fold beyond the file equals nnU-Net's", function()
    for _, n in ipairs { 7, 23 } do
      for _, f in ipairs { 5, 6 } do
        local fx = json.read(("%srandom80_%d_fold%d.json"):format(FIX, n, f))
        local s = splits.generate(plain(fx.ids))
        local tr, val, note = splits.fold(s, plain(fx.ids), f)
        assert.are.same(plain(fx.train), tr)
        assert.are.same(plain(fx.val), val)
        assert.truthy(note:find("80:20"))
      end
    end
  end)

  it("fold all, fold lookup and bad folds", function()
    local ids = { "b", "a", "c", "e", "d", "f" }
    local s = splits.generate(ids)
    local tr, val = splits.fold(s, ids, "all")
    assert.are.same({ "a", "b", "c", "d", "e", "f" }, tr)
    assert.are.same(tr, val)
    local t2, v2, note = splits.fold(s, ids, 2)
    assert.are.equal(s[3].train, t2); assert.are.equal(s[3].val, v2); assert.is_nil(note)
    assert.has_error(function() splits.fold(s, ids, -1) end)
    assert.has_error(function() splits.generate({ "a", "b", "c" }) end)
  end)

  it("load_or_create writes splits_final.json as nnU-Net and reuses an existing file", function()
    local dir = os.tmpname(); os.remove(dir); assert(os.execute("mkdir -p " .. dir))
    local fx = json.read(FIX .. "splits_10.json")
    local s, created = splits.load_or_create(dir, plain(fx.ids))
    assert.is_true(created)
    local fh = assert(io.open(dir .. "/splits_final.json")); local text = fh:read("a"); fh:close()
    -- nnU-Net's save_json: indent 4, keys sorted
    assert.are.equal(json.encode(json.read(FIX .. "splits_10.json").splits, { indent = 4, sort_keys = true }), text)
    assert.truthy(text:find('\n    {\n        "train": [\n            "case_', 1, true))
    -- an existing (custom) file wins over the case list
    json.write(dir .. "/splits_final.json", { { train = json.array { "x" }, val = json.array { "y" } } })
    local s2, created2 = splits.load_or_create(dir, plain(fx.ids))
    assert.is_false(created2)
    assert.are.same({ { train = { "x" }, val = { "y" } } }, plain(s2))
    assert.are.equal(5, #s)
    os.execute("rm -rf " .. dir)
  end)

  it("sorts identifiers by bytes, not by locale", function()
    assert.is_true(splits.byte_lt("Z", "a"))
    assert.is_true(splits.byte_lt("case_1", "case_10"))
    assert.is_false(splits.byte_lt("case_2", "case_10"))
  end)
end)
