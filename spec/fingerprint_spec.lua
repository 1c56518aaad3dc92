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

-- Real images from Debian packages (too big to commit; scripts/install-deps.sh installs mricron-data and unpacks
-- insighttoolkit5-examples under /tmp/itkex): nnunetv2's fingerprint and ExperimentPlanner plans of each were made
-- by scripts/fixtures/make_real_fp_fixtures.py. Lunet's own fingerprint must equal nnU-Net's file byte for byte,
-- and so must the plans made from it.
describe("fingerprint and plans of real images equal nnunetv2's byte for byte", function()
  local planner = require "lunet.planner"
  local REAL = "spec/fixtures/real_fp"

  local function read_text(path)
    local f = assert(io.open(path, "rb"))
    local s = f:read("a")
    f:close()
    return s
  end

  local function exists(p)
    local f = io.open(p, "rb")
    if f then f:close() end
    return f ~= nil
  end

  local function package_file(p)
    if exists(p) then return p end
    if exists("/tmp/itkex" .. p) then return "/tmp/itkex" .. p end
    return nil
  end

  local dirs = {}
  local p = io.popen('ls -d ' .. REAL .. '/*/ 2>/dev/null')
  for l in p:lines() do dirs[#dirs + 1] = l:gsub("/$", "") end
  p:close()
  table.sort(dirs)

  it("has at least three real-image datasets", function()
    assert.is_true(#dirs >= 3, "found " .. #dirs)
  end)

  for _, dir in ipairs(dirs) do
    local src = json.read(dir .. "/sources.json")
    local missing
    for _, c in ipairs(src.cases) do
      if not package_file(c.image) or not package_file(c.label) then missing = c.image end
    end
    local name = dir:match("[^/]+$")
    if missing then
      pending(name .. ": " .. missing .. " missing (install " .. src.package .. ": scripts/install-deps.sh)")
    else
      it(name .. ": " .. #src.cases .. " case(s) of " .. src.package, function()
        local tmp = os.tmpname()
        os.remove(tmp)
        local raw = tmp .. "/" .. src.dataset_name
        assert.is_true(os.execute("mkdir -p " .. raw .. "/imagesTr " .. raw .. "/labelsTr"))
        for _, c in ipairs(src.cases) do
          assert.is_true(os.execute(("ln -s '%s' '%s/imagesTr/%s_0000.nii.gz'"):format(package_file(c.image), raw,
            c.id)))
          assert.is_true(os.execute(("ln -s '%s' '%s/labelsTr/%s.nii.gz'"):format(package_file(c.label), raw, c.id)))
        end
        assert.is_true(os.execute(("cp '%s/dataset.json' '%s/'"):format(dir, raw)))
        local out = tmp .. "/dataset_fingerprint.json"
        local ok, err = pcall(fingerprint.extract, raw, { output = out, threads = 2, progress = false })
        local got = ok and read_text(out)
        os.execute("rm -rf '" .. tmp .. "'")
        assert(ok, err)
        assert.are.equal(read_text(dir .. "/dataset_fingerprint.json"), got)
        local plans = planner.plan(json.decode(got), { rules = "default",
          dataset_json = json.read(dir .. "/dataset.json"), dataset_name = src.dataset_name })
        assert.are.equal(read_text(dir .. "/nnUNetPlans.json"), json.encode(plans, { indent = 4, sort_keys = false }))
      end)
    end
  end
end)
