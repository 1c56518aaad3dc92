-- Fingerprint parity with nnunetv2 2.8.1's DatasetFingerprintExtractor on the tiny fixture datasets whose images are
-- committed under spec/fixtures/plans/<name>/raw (made by scripts/fixtures/make_plan_fixtures.py).
local json = require "lunet.util.json"
local fingerprint = require "lunet.fingerprint"

local FIX = "spec/fixtures/plans"

local function raw_dirs()
  local out = {}
  local p = io.popen('ls -d ' .. FIX .. '/*/raw 2>/dev/null')
  for l in p:lines() do out[#out + 1] = l end
  p:close()
  table.sort(out)
  return out
end

local STATS = { "mean", "median", "std", "min", "max", "percentile_99_5", "percentile_00_5" }

describe("fingerprint parity with nnunetv2", function()
  local dirs = raw_dirs()

  it("has fixture datasets with images", function()
    assert.is_true(#dirs >= 5, "found " .. #dirs)
  end)

  for _, raw in ipairs(dirs) do
    local name = raw:match("([^/]+)/raw$")
    it(name .. ": equal to nnunetv2's, intensity statistics bit for bit", function()
      local out = os.tmpname()
      local fp = fingerprint.extract(raw, { output = out, threads = 2, progress = false })
      local exp = json.read(raw .. "/../dataset_fingerprint.json")
      local written = json.read(out)
      os.remove(out)
      assert.are.same(exp.shapes_after_crop, written.shapes_after_crop)
      assert.are.equal(#exp.spacings, #written.spacings)
      for i, s in ipairs(exp.spacings) do
        for d = 1, 3 do
          assert.are.equal(math.type(s[d]), math.type(written.spacings[i][d]), "spacing number type")
          assert.are.equal(s[d], written.spacings[i][d])
        end
      end
      assert.are.equal(exp.median_relative_size_after_cropping, written.median_relative_size_after_cropping)
      local ek = json.keys(exp.foreground_intensity_properties_per_channel)
      assert.are.same(ek, json.keys(written.foreground_intensity_properties_per_channel))
      for _, c in ipairs(ek) do
        local e, g = exp.foreground_intensity_properties_per_channel[c],
          written.foreground_intensity_properties_per_channel[c]
        for _, k in ipairs(STATS) do
          -- same seeded draws, same float32 pairwise sums and percentile interpolation: identical doubles
          assert.are.equal(e[k], g[k], string.format("%s channel %s %s: lunet %.17g, nnU-Net %.17g", name, c, k,
            g[k], e[k]))
        end
      end
      assert.are.equal(#exp.spacings, #fp.cases)
    end)
  end

  it("a case whose label does not match the image is reported with the file", function()
    local raw = FIX .. "/tiny_odd/raw"
    local ok, err = pcall(fingerprint.compute, {
      { images = { raw .. "/imagesTr/case_000_0000.nii.gz" }, label = raw .. "/labelsTr/case_001.nii.gz" },
    }, 1, { progress = false })
    assert.is_false(ok)
    assert.matches("case_001.nii.gz", err, 1, true)
  end)

  it("sample count per case is nnU-Net's int(10e7 // n)", function()
    assert.are.equal(100000, fingerprint.samples_per_case(1000))
    assert.are.equal(33333333, fingerprint.samples_per_case(3))
    assert.are.equal(1000, fingerprint.samples_per_case(100000))
  end)
end)
