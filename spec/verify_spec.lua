-- lunet.dataset.verify and `lunet verify`: a clean dataset (checked clean by nnunetv2's verify_dataset_integrity when
-- the fixture was made) passes; a copy with six planted faults of different kinds lists every one, naming case and
-- file, and leaves every file byte-identical.
local dataset = require "lunet.dataset"
local json = require "lunet.util.json"

local FIX = "spec/fixtures/dataset/verify/"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r")); local out = p:read("a"); local ok, _, code = p:close()
  return out, ok and 0 or code
end

local function tmpdir()
  local d = os.tmpname(); os.remove(d); assert(os.execute("mkdir -p '" .. d .. "'")); return d
end

-- verify and the CLI read the images with lunet.io.image: without it this spec must fail, not skip
require "lunet.io.image"

local function checksums(dir)
  return (sh("cd '" .. dir .. "' && find . -type f | LC_ALL=C sort | xargs sha1sum"))
end

local function find(list, ...)
  local needles = { ... }
  for _, s in ipairs(list) do
    local all = true
    for _, n in ipairs(needles) do if not s:find(n, 1, true) then all = false end end
    if all then return s end
  end
  return nil
end

describe("dataset.verify", function()
  local raw, ds_dir
  before_each(function()
    raw = tmpdir()
    ds_dir = raw .. "/Dataset101_Verify"
    assert(os.execute("cp -r '" .. FIX .. "Dataset101_Verify' '" .. raw .. "/'"))
  end)
  after_each(function() os.execute("rm -rf '" .. raw .. "'") end)

  it("passes the clean dataset", function()
    local ok, problems, warnings = dataset.verify(ds_dir)
    assert.are.same({}, problems)
    assert.are.same({}, warnings)
    assert.is_true(ok)
  end)

  it("lists all six planted faults, each naming case and file, and modifies nothing", function()
    local F = FIX .. "faults/"
    assert(os.remove(ds_dir .. "/labelsTr/case_003.nii.gz"))                                       -- 1 missing label
    assert(os.execute(("cp %snan.nii.gz %s/imagesTr/case_001_0001.nii.gz"):format(F, ds_dir)))       -- 2 NaN
    assert(os.execute(("cp %slabel5.nii.gz %s/labelsTr/case_002.nii.gz"):format(F, ds_dir)))         -- 3 label 5
    assert(os.execute(("cp %sspacing.nii.gz %s/imagesTr/case_004_0001.nii.gz"):format(F, ds_dir)))   -- 4 spacing
    assert(os.execute(("cp %slabel_shape.nii.gz %s/labelsTr/case_005.nii.gz"):format(F, ds_dir)))    -- 5 shape
    local dj = json.read(ds_dir .. "/dataset.json")                                                  -- 6 numTraining
    dj.numTraining = 7
    json.write(ds_dir .. "/dataset.json", dj, { sort_keys = false })
    assert(os.execute(("cp %sorigin.nii.gz %s/imagesTr/case_003_0001.nii.gz"):format(F, ds_dir)))    -- warning only
    local before = checksums(ds_dir)

    local ok, problems, warnings = dataset.verify(ds_dir)
    assert.is_false(ok)
    local function expect(...)
      local hit = find(problems, ...)
      assert(hit, "no problem mentions " .. table.concat({ ... }, " + ") .. " in:\n" .. table.concat(problems, "\n"))
    end
    expect("case_003", "labelsTr/case_003.nii.gz", "label file missing")
    expect("case_001", "imagesTr/case_001_0001.nii.gz", "1 NaN")
    expect("case_002", "labelsTr/case_002.nii.gz", "unexpected label value(s) [5]", "expected [0, 1, 2]")
    expect("case_004", "imagesTr/case_004_0001.nii.gz", "spacing", "3.0", "differs")
    expect("case_005", "labelsTr/case_005.nii.gz", "shape [4, 5, 5] differs from image shape [4, 5, 6]")
    expect("dataset.json", "numTraining is 7 but 5")
    assert.are.equal(6, #problems, table.concat(problems, "\n"))
    assert(find(warnings, "case_003", "case_003_0001.nii.gz", "origin"), table.concat(warnings, "\n"))
    -- strict mode promotes the origin warning
    local _, strict = dataset.verify(ds_dir, { strict = true })
    assert.are.equal(7, #strict)
    assert.are.equal(before, checksums(ds_dir))
  end)

  it("reports dataset.json problems: missing keys, bad labels, missing folders, misnamed files", function()
    local dj = json.read(ds_dir .. "/dataset.json")
    dj.file_ending = ".nii.gz"
    dj.numTraining = nil
    dj.labels = json.object({ background = 0, liver = 1, tumour = 3 }, { "background", "liver", "tumour" })
    json.write(ds_dir .. "/dataset.json", dj, { sort_keys = false })
    assert(os.execute(("cp %s/imagesTr/case_001_0000.nii.gz %s/imagesTr/case6.nii.gz"):format(ds_dir, ds_dir)))
    assert(os.execute(("cp %s/labelsTr/case_001.nii.gz %s/labelsTr/orphan.nii.gz"):format(ds_dir, ds_dir)))
    local ok, problems = dataset.verify(ds_dir)
    assert.is_false(ok)
    assert(find(problems, "dataset.json", "required key(s) missing: numTraining"), table.concat(problems, "\n"))
    assert(find(problems, "dataset.json", "consecutive", "3"), table.concat(problems, "\n"))
    assert(find(problems, "imagesTr/case6.nii.gz", "_XXXX"), table.concat(problems, "\n"))
    assert(find(problems, "labelsTr/orphan.nii.gz", "no images"), table.concat(problems, "\n"))
    -- a missing labelsTr folder and a missing dataset.json
    os.execute("rm -rf '" .. ds_dir .. "/labelsTr'")
    local _, p2 = dataset.verify(ds_dir)
    assert(find(p2, "labelsTr", "missing folder"), table.concat(p2, "\n"))
    os.remove(ds_dir .. "/dataset.json")
    local ok3, p3 = dataset.verify(ds_dir)
    assert.is_false(ok3)
    assert.are.equal(1, #p3)
    assert.matches("dataset.json: missing", p3[1], 1, true)
  end)

  it("checks the files a 'dataset' dict lists", function()
    local dj = json.read(ds_dir .. "/dataset.json")
    dj.dataset = {
      a = { images = { "imagesTr/case_001_0000.nii.gz", "imagesTr/case_001_0001.nii.gz" }, label = "labelsTr/case_001.nii.gz" },
      -- an absolute path through an environment variable (expanded as nnU-Net's os.path.expandvars does)
      b = { images = { "${PWD}/" .. FIX .. "Dataset101_Verify/imagesTr/case_002_0000.nii.gz", "imagesTr/nope_0001.nii.gz" },
            label = "labelsTr/case_002.nii.gz" },
    }
    dj.numTraining = 2
    json.write(ds_dir .. "/dataset.json", dj)
    local ok, problems = dataset.verify(ds_dir)
    assert.is_false(ok)
    assert.are.equal(1, #problems, table.concat(problems, "\n"))
    assert(find(problems, "b: ", "imagesTr/nope_0001.nii.gz", "missing"), table.concat(problems, "\n"))
  end)

  it("reports an empty dataset, naming the folder", function()
    os.execute("rm -f '" .. ds_dir .. "'/imagesTr/* '" .. ds_dir .. "'/labelsTr/*")
    local ok, problems = dataset.verify(ds_dir)
    assert.is_false(ok)
    assert(find(problems, ds_dir, "the dataset is empty: no training cases", "imagesTr: no files ending in .nii.gz"),
      table.concat(problems, "\n"))
  end)

  it("names dangling and looping symbolic links among images and labels, with what they point to", function()
    assert(os.remove(ds_dir .. "/imagesTr/case_002_0001.nii.gz"))
    assert(os.execute(("ln -s /nonexistent/elsewhere.nii.gz '%s/imagesTr/case_002_0001.nii.gz'"):format(ds_dir)))
    assert(os.remove(ds_dir .. "/labelsTr/case_004.nii.gz"))
    -- a loop: a -> b -> a
    assert(os.execute(("cd '%s/labelsTr' && ln -s loop_b.nii.gz case_004.nii.gz && ln -s case_004.nii.gz loop_b.nii.gz")
      :format(ds_dir)))
    local ok, problems = dataset.verify(ds_dir)
    assert.is_false(ok)
    local all = table.concat(problems, "\n")
    assert(find(problems, "imagesTr/case_002_0001.nii.gz", "symbolic link to /nonexistent/elsewhere.nii.gz",
      "dangling"), all)
    assert(find(problems, "labelsTr/case_004.nii.gz", "symbolic link to loop_b.nii.gz", "loops"), all)
    assert(find(problems, "labelsTr/loop_b.nii.gz", "symbolic link to case_004.nii.gz", "loops"), all)
    -- reported once, not again as "missing"
    assert.is_nil(find(problems, "case_004.nii.gz", "label file missing"), all)
    assert.is_nil(find(problems, "case_002_0001.nii.gz", "image file missing"), all)
  end)

  it("names NaN, Inf, zero and negative spacing in an image header with the file and the value", function()
    -- pixdim[2] (the y spacing, bytes 84..87 of the NIfTI-1 header) of one image per case
    local planted = { case_001 = "NaN", case_002 = "Inf", case_004 = "0.0", case_005 = "-1.0" }
    local py = [[
import gzip, struct, sys
p, v = sys.argv[1], float(sys.argv[2])
b = bytearray(gzip.open(p).read()); b[84:88] = struct.pack('<f', v)
gzip.open(p, 'wb').write(bytes(b))
]]
    local f = assert(io.open(raw .. "/pixdim.py", "w")); f:write(py); f:close()
    for id, v in pairs(planted) do
      local arg = ({ NaN = "nan", Inf = "inf" })[v] or v
      assert(os.execute(("python3 '%s/pixdim.py' '%s/imagesTr/%s_0000.nii.gz' %s"):format(raw, ds_dir, id, arg)))
    end
    local ok, problems = dataset.verify(ds_dir)
    assert.is_false(ok)
    local all = table.concat(problems, "\n")
    for id, v in pairs(planted) do
      assert(find(problems, id .. ": ", "imagesTr/" .. id .. "_0000.nii.gz", "spacing " .. v .. " on axis y",
        "image header"), v .. ":\n" .. all)
    end
  end)

  describe("lunet verify (CLI)", function()
    local function lunet(args)
      return sh("nnUNet_raw='" .. raw .. "' scripts/lunet verify " .. args)
    end
    it("says OK on the clean dataset (by id) and exits 0; exits 1 listing problems otherwise", function()
      local out, code = lunet("101")
      assert.are.equal(0, code, out)
      assert.matches("OK", out, 1, true)
      assert(os.execute(("cp %snan.nii.gz %s/imagesTr/case_001_0001.nii.gz"):format(FIX .. "faults/", ds_dir)))
      os.remove(ds_dir .. "/labelsTr/case_003.nii.gz")
      out, code = lunet("Dataset101_Verify")
      assert.are.equal(1, code, out)
      assert.matches("case_001_0001.nii.gz", out, 1, true)
      assert.matches("case_003.nii.gz", out, 1, true)
      assert.matches("2 problem", out, 1, true)
    end)
    it("prints usage with -h and fails on an unknown dataset", function()
      local out, code = lunet("-h")
      assert.are.equal(0, code)
      assert.matches("usage: lunet verify", out, 1, true)
      out, code = lunet("999")
      assert.are_not.equal(0, code)
      assert.matches("999", out, 1, true)
    end)
  end)
end)
