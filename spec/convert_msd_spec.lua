-- lunet.dataset.convert_msd / `lunet convert-msd` against what nnunetv2's convert_msd_dataset made of the same tiny
-- synthetic MSD tasks (spec/fixtures/dataset/msd -> msd_expected, scripts/fixtures/make_dataset_fixtures.py):
-- same dataset.json bytes, same file list, and per file the same shape, dtype, geometry and voxel bytes (sha1).
local dataset = require "lunet.dataset"
local json = require "lunet.util.json"

local FIX = "spec/fixtures/dataset/"

local image = require "lunet.io.image"
local mini = dofile(FIX .. "mini_nifti.lua")
-- read-only stand-in for lunet.io.image (3-D images are copied, never rewritten): the error paths below must fail
-- before anything is written
local read_only_image = { read = mini.read, write = function() error("image.write needs lunet.io.image") end }

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1", "r")); local out = p:read("a"); local ok, _, code = p:close()
  return out, ok and 0 or code
end
local function tmpdir()
  local d = os.tmpname(); os.remove(d); assert(os.execute("mkdir -p '" .. d .. "'")); return d
end
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function sha1(bytes)
  local f = os.tmpname()
  local h = assert(io.open(f, "wb")); h:write(bytes); h:close()
  local out = sh("sha1sum '" .. f .. "'")
  os.remove(f)
  return out:match("^(%x+)")
end

local DT = { float32 = "f32", uint8 = "u8", int16 = "i16", float64 = "f64", int32 = "i32", uint16 = "u16" }

local function close(a, b, tol)
  if #a ~= #b then return false end
  for i = 1, #a do if math.abs(a[i] - b[i]) > tol then return false end end
  return true
end

local function check_against_expected(task, raw)
  local exp = FIX .. "msd_expected/" .. task .. "/"
  local files = json.read(exp .. "files.json")
  local name = files[1].file:match("^([^/]+)/")
  local target = raw .. "/" .. name
  assert.are.equal(slurp(exp .. "dataset.json"), slurp(target .. "/dataset.json"))
  local want = {}
  for i, r in ipairs(files) do want[i] = r.file end
  local got = {}
  for line in sh("cd '" .. raw .. "' && find . -type f | LC_ALL=C sort"):gmatch("[^\n]+") do
    if not line:match("/dataset%.json$") then got[#got + 1] = line:sub(3) end
  end
  table.sort(want)
  assert.are.same(want, got)
  for _, r in ipairs(files) do
    local img = image.read(raw .. "/" .. r.file)
    local sh4 = img.data.shape
    assert.are.same({ 1, r.shape[1], r.shape[2], r.shape[3] }, { sh4[1], sh4[2], sh4[3], sh4[4] }, r.file)
    assert.are.equal(DT[r.dtype], img.data.dtype, r.file)
    assert(close(img.sitk.spacing, r.spacing, 1e-6), r.file .. " spacing")
    assert(close(img.sitk.origin, r.origin, 1e-4), r.file .. " origin")
    assert(close(img.sitk.direction, r.direction, 1e-5), r.file .. " direction")
    assert.are.equal(r.sha1, sha1(img.data:bytes()), r.file .. " voxels")
  end
  return target
end

describe("convert-msd", function()
  local raw
  before_each(function() raw = tmpdir() end)
  after_each(function() os.execute("rm -rf '" .. raw .. "'") end)

  it("converts a 3-D single-channel task (Task02_Mini) exactly as nnunetv2", function()
    local target = dataset.convert_msd(FIX .. "msd/Task02_Mini/", { raw = raw })
    assert.are.equal(raw .. "/Dataset002_Mini", target)
    check_against_expected("Task02_Mini", raw)
    -- 3-D images are byte copies, like shutil.copy
    assert.are.equal(slurp(FIX .. "msd/Task02_Mini/imagesTr/tiny_001.nii.gz"),
      slurp(target .. "/imagesTr/tiny_001_0000.nii.gz"))
    -- and the result is a valid dataset
    local ds = dataset.open(target)
    assert.are.same({ "CT" }, ds.channels)
    assert.are.same({ 0, 1, 2 }, ds.labels.all_labels)
    assert.are.equal(2, #ds.cases)
  end)

  it("splits 4-D two-channel images (Task05_Tiny) exactly as nnunetv2", function()
    dataset.convert_msd(FIX .. "msd/Task05_Tiny", { raw = raw })
    local target = check_against_expected("Task05_Tiny", raw)
    local ok, problems = dataset.verify(target)
    assert.is_true(ok, table.concat(problems, "\n"))
  end)

  it("honours --id, refuses a taken id, and names the folder for bad input", function()
    local out, code = sh("nnUNet_raw='" .. raw .. "' scripts/lunet convert-msd -q " .. FIX .. "msd/Task02_Mini --id 202")
    assert.are.equal(0, code, out)
    assert.matches(raw .. "/Dataset202_Mini", out, 1, true)
    local dj = json.read(raw .. "/Dataset202_Mini/dataset.json")
    assert.are.same({ "name", "description", "reference", "licence", "release", "tensorImageSize", "labels",
      "numTraining", "numTest", "file_ending", "channel_names" }, json.keys(dj))
    out, code = sh("nnUNet_raw='" .. raw .. "' scripts/lunet convert-msd " .. FIX .. "msd/Task02_Mini --id 202")
    assert.are_not.equal(0, code)
    assert.matches("target dataset id 202 is already taken", out, 1, true)
    local ok, err = pcall(dataset.convert_msd, FIX .. "msd/Task02_Mini", { raw = raw, id = 202, image = read_only_image })
    assert.is_false(ok)
    assert.matches("target dataset id 202 is already taken", err, 1, true)
    ok, err = pcall(dataset.convert_msd, FIX .. "verify/Dataset101_Verify", { raw = raw, image = read_only_image })
    assert.is_false(ok)
    assert.matches("Dataset101_Verify: folder name must be TaskXX_Name", err, 1, true)
    assert(os.execute("mkdir -p '" .. raw .. "/Task09_Half/imagesTr'"))
    ok, err = pcall(dataset.convert_msd, raw .. "/Task09_Half", { raw = raw, image = read_only_image })
    assert.is_false(ok)
    assert.matches(raw .. "/Task09_Half/labelsTr: labelsTr subfolder missing", err, 1, true)
    out, code = sh("scripts/lunet convert-msd -h")
    assert.are.equal(0, code)
    assert.matches("usage: lunet convert-msd [-h] [-i TASK_FOLDER] [-overwrite_id N]", out, 1, true)
  end)

  it("takes nnUNetv2_convert_MSD_dataset's -i and -overwrite_id (and -np), and refuses what they cannot mean", function()
    local env = "nnUNet_raw='" .. raw .. "' "
    local out, code = sh(env .. "scripts/lunet convert-msd -q -i " .. FIX .. "msd/Task02_Mini -overwrite_id 212 -np 4")
    assert.are.equal(0, code, out)
    assert.are.equal(raw .. "/Dataset212_Mini\n", out)
    -- the same dataset as nnunetv2's conversion, under the id asked for
    assert.are.equal(slurp(FIX .. "msd_expected/Task02_Mini/dataset.json"), slurp(raw .. "/Dataset212_Mini/dataset.json"))
    assert.are.equal(slurp(FIX .. "msd/Task02_Mini/imagesTr/tiny_001.nii.gz"),
      slurp(raw .. "/Dataset212_Mini/imagesTr/tiny_001_0000.nii.gz"))
    for _, c in ipairs({
      { "-i " .. FIX .. "msd/Task02_Mini -overwrite_id x", "lunet convert-msd: -overwrite_id needs an integer >= 0, got x" },
      { "-i " .. FIX .. "msd/Task02_Mini -overwrite_id", "lunet convert-msd: option '-overwrite_id' requires an argument" },
      { FIX .. "msd/Task02_Mini -i " .. FIX .. "msd/Task02_Mini", "give the task folder once: as TASK_FOLDER or with -i" },
      { "-overwrite_id 213", "lunet convert-msd: missing the task folder (TASK_FOLDER or -i)" },
      { "-i " .. FIX .. "msd/Task02_Mini -np 0", "lunet convert-msd: -np needs a positive integer, got 0" },
    }) do
      out, code = sh(env .. "scripts/lunet convert-msd -q " .. c[1])
      assert.are.equal(2, code, out)
      assert.matches(c[2], out, 1, true)
    end
    assert.is_nil(io.open(raw .. "/Dataset213_Mini/dataset.json"))
  end)
end)
