-- nnU-Net's remaining commands (accumulate_crossval_results, move_plans_between_datasets,
-- convert_old_nnUNet_dataset) against nnunetv2's own outputs for the same inputs (spec/fixtures/crossval,
-- convert_old, move_plans: made by nnunetv2 2.8.1), and the nnUNetv2_* name translation and wrappers.
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local tmp = require "spec.support.tmp"
local q = tmp.quote

local function read(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function lunet(env, cmd)
  local p = assert(io.popen(env .. " scripts/lunet " .. cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok and 0 or code, out
end

local function roots(root)
  return string.format("nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s", q(root .. "/raw"),
    q(root .. "/pre"), q(root .. "/res"))
end

describe("accumulate-crossval-results", function()
  local root
  before_each(function()
    root = tmp.dir()
    os.execute(string.format("cp -r spec/fixtures/crossval/raw %s/raw && cp -r spec/fixtures/crossval/results %s/res",
      q(root), q(root)))
  end)
  after_each(function() tmp.remove(root) end)

  it("merges folds 0 and 1 and scores them as nnunetv2 does", function()
    local rc, out = lunet(roots(root), "accumulate-crossval-results 501 -c 2d -f 0 1")
    assert.equal(0, rc, out)
    local merged = root .. "/res/Dataset501_TinyShapes/nnUNetTrainer__nnUNetPlans__2d/crossval_results_folds_0_1"
    local got, want = json.read(merged .. "/summary.json"), json.read("spec/fixtures/crossval/summary_nnunetv2.json")
    assert.same(want.foreground_mean, got.foreground_mean)
    assert.same(want.mean, got.mean)
    assert.equal(4, #got.metric_per_case)
    for i, c in ipairs(want.metric_per_case) do
      assert.equal(paths.basename(c.prediction_file), paths.basename(got.metric_per_case[i].prediction_file))
      assert.same(c.metrics, got.metric_per_case[i].metrics)
    end
    -- the folds' own summary.json is not a prediction; plans and dataset json come along
    for _, f in ipairs({ "plans.json", "dataset.json", "tiny_001.nii.gz", "tiny_004.nii.gz" }) do
      assert.is_true(paths.isfile(merged .. "/" .. f), f)
    end
    assert.matches("0.7586", out, 1, true)
  end)

  it("refuses a non-empty -o folder and a case predicted by two folds", function()
    local out_dir = root .. "/mine"
    paths.mkdirs(out_dir)
    io.open(out_dir .. "/keep.txt", "w"):close()
    local rc, out = lunet(roots(root), "accumulate-crossval-results 501 -c 2d -f 0 1 -o " .. q(out_dir))
    assert.equal(1, rc)
    assert.matches("not empty", out)
    local v = root .. "/res/Dataset501_TinyShapes/nnUNetTrainer__nnUNetPlans__2d/fold_"
    os.execute(string.format("cp %s0/validation/tiny_001.nii.gz %s1/validation/", q(v), q(v)))
    rc, out = lunet(roots(root), "accumulate-crossval-results 501 -c 2d -f 0 1")
    assert.equal(1, rc)
    assert.matches("More than one of your folds has a prediction for case tiny_001.nii.gz", out, 1, true)
  end)
end)

describe("convert-old-dataset and move-plans-between-datasets", function()
  local root
  before_each(function()
    root = tmp.dir()
    paths.mkdirs(root .. "/raw")
    os.execute(string.format("cp -r spec/fixtures/move_plans/pre %s/pre", q(root)))
  end)
  after_each(function() tmp.remove(root) end)

  it("converts a v1 task folder into the dataset nnunetv2 makes of it", function()
    local rc, out = lunet(roots(root), "convert-old-dataset spec/fixtures/convert_old/Task042_Tiny Dataset042_Tiny")
    assert.equal(0, rc, out)
    local t = root .. "/raw/Dataset042_Tiny"
    -- byte for byte: same keys, same order, same indentation
    assert.equal(read("spec/fixtures/convert_old/dataset_v2_nnunetv2.json"), read(t .. "/dataset.json"))
    for _, f in ipairs({ "imagesTr/tiny_001_0000.nii.gz", "imagesTr/tiny_002_0000.nii.gz", "labelsTr/tiny_002.nii.gz",
                         "imagesTs/tiny_011_0000.nii.gz" }) do
      assert.equal(read("spec/fixtures/convert_old/Task042_Tiny/" .. f), read(t .. "/" .. f), f)
    end
    assert.is_false(paths.exists(t .. "/labelsTs"))
    -- and the result is a valid v2 dataset
    rc, out = lunet(roots(root), "verify Dataset042_Tiny -q")
    assert.equal(0, rc, out)
    -- a second conversion would overwrite it: refused
    rc, out = lunet(roots(root), "convert-old-dataset spec/fixtures/convert_old/Task042_Tiny Dataset042_Tiny")
    assert.equal(1, rc)
    assert.matches("already exists", out)
    rc, out = lunet(roots(root), "convert-old-dataset spec/fixtures/convert_old/Task042_Tiny Task042_Tiny")
    assert.equal(1, rc)
    assert.matches("DatasetXXX_Name", out)
  end)

  it("moves plans to another dataset as nnunetv2 does", function()
    assert.equal(0, (lunet(roots(root), "convert-old-dataset spec/fixtures/convert_old/Task042_Tiny Dataset042_Tiny")))
    local rc, out = lunet(roots(root), "move-plans-between-datasets -s 501 -t 42 -sp nnUNetPlans -tp nnUNetPlansFrom501")
    assert.equal(0, rc, out)
    assert.equal(read("spec/fixtures/move_plans/nnUNetPlansFrom501_nnunetv2.json"),
      read(root .. "/pre/Dataset042_Tiny/nnUNetPlansFrom501.json"))
    rc, out = lunet(roots(root), "move-plans-between-datasets -s 501 -t 42 -sp NoSuchPlans")
    assert.equal(1, rc)
    assert.matches("NoSuchPlans.json: source plans missing", out, 1, true)
  end)
end)

describe("nnUNetv2_* names", function()
  local nn = require "lunet.nnunet_names"

  it("translates nnU-Net's arguments where lunet's differ", function()
    assert.same({ { "verify", { "4" } }, { "fingerprint", { "4", "-np", "3" } },
                  { "verify", { "5" } }, { "fingerprint", { "5", "-np", "3" } } },
      nn.translate("nnUNetv2_extract_fingerprint",
        { "-d", "4", "5", "--verify_dataset_integrity", "-np", "3", "-fpe", "DatasetFingerprintExtractor" }))
    assert.same({ { "plan-and-preprocess", { "-d", "4", "-c", "2d", "-q" } } },
      nn.translate("nnUNetv2_plan_and_preprocess", { "-d", "4", "-c", "2d", "--no_pbar", "--verbose" }))
    assert.same({ { "preprocess", { "7", "-plans_name", "P", "-v" } } },
      nn.translate("nnUNetv2_preprocess", { "-d", "7", "-plans_name", "P", "--verbose" }))
    assert.same({ { "train", { "4", "2d", "0", "-tr", "X", "-device", "cpu" } } },
      nn.translate("nnUNetv2_train", { "4", "2d", "0", "-num_gpus", "1", "-tr", "X", "-device", "cpu" }))
    assert.same({ { "predict", { "-i", "a", "-o", "b" } } },
      nn.translate("nnUNetv2_predict", { "-i", "a", "--not_on_device", "-o", "b" }))
    assert.same({ { "convert-msd", { "Task05_Prostate", "-overwrite_id", "7" } } },
      nn.translate("nnUNetv2_convert_MSD_dataset", { "-i", "Task05_Prostate", "-np", "4", "-overwrite_id", "7" }))
    assert.has_error(function() nn.translate("nnUNetv2_train", { "4", "2d", "0", "-num_gpus", "2" }) end)
    -- lunet plan takes nnU-Net's target spacing as it is
    assert.same({ { "plan", { "4", "-overwrite_target_spacing", "1", "1", "1" } } },
      nn.translate("nnUNetv2_plan_experiment", { "-d", "4", "-overwrite_target_spacing", "1", "1", "1" }))
  end)

  it("every name runs a lunet command that exists", function()
    local cli = require "lunet.cli"
    for _, n in ipairs(nn.names()) do
      assert.is_not_nil(cli.command_module(nn.COMMANDS[n].command), n)
    end
  end)

  it("scripts/nnunet-names/ holds the current wrappers, executable", function()
    local listed = {}
    for _, f in ipairs(paths.listdir("scripts/nnunet-names")) do listed[f] = true end
    for _, n in ipairs(nn.names()) do
      local p = "scripts/nnunet-names/" .. n
      assert.is_true(listed[n] == true, p .. " missing: run scripts/lunet nnunet --write-wrappers scripts/nnunet-names")
      assert.equal(nn.wrapper(n), read(p), p .. " is stale")
      assert.is_true(os.execute("test -x " .. q(p)) == true, p .. " not executable")
      listed[n] = nil
    end
    assert.same({}, listed)
  end)

  it("a wrapper passes its arguments through: nnUNetv2_train's errors are lunet train's", function()
    local p = assert(io.popen("scripts/nnunet-names/nnUNetv2_train 4 2d 0 -num_gpus 3 2>&1"))
    local out = p:read("a")
    p:close()
    assert.matches("nnUNetv2_train: %-num_gpus 3", out)
  end)
end)

describe("plot-overlay-pngs", function()
  local image = require "lunet.io.image"
  local overlay = require "lunet.overlay"
  local root
  before_each(function()
    root = tmp.dir()
    os.execute(string.format("cp -r spec/fixtures/overlay/raw %s/raw", q(root)))
  end)
  after_each(function() tmp.remove(root) end)

  it("draws nnunetv2's pictures pixel for pixel from the raw data (--use_raw)", function()
    local rc, out = lunet(roots(root), "plot-overlay-pngs -d 502 -o " .. q(root .. "/ov") .. " --use_raw")
    assert.equal(0, rc, out)
    for k = 0, 2 do
      local f = string.format("ov_%03d.png", k)
      local want, got = image.read("spec/fixtures/overlay/nnunetv2/" .. f).data, image.read(root .. "/ov/" .. f).data
      assert.same({ 4, 1, 12, 10 }, got.shape)
      assert.equal(want:bytes(), got:bytes(), f)
    end
  end)

  it("picks nnU-Net's slice: most foreground share averaged over classes, with nnU-Net's running normaliser", function()
    -- case 0: label 1 on slices 1-3 (12 voxels each), label 2 on slices 4-5 (20 each); case 2: one blob on slice 6
    local want = { [0] = 4, 2, 6 }
    for k = 0, 2 do
      local seg = image.read(string.format("spec/fixtures/overlay/raw/Dataset502_Overlay3D/labelsTr/ov_%03d.nii.gz", k)).data
      assert.equal(want[k], overlay.select_slice(seg))
    end
    assert.equal(0, overlay.select_slice(require("lunet").tensor({ 0, 0, 0, 0 }, { shape = { 1, 2, 1, 2 }, dtype = "u8" })))
  end)

  it("draws the preprocessed cases by default", function()
    assert.equal(0, (lunet(roots(root), "plan-and-preprocess 502 -c 3d_fullres -q")))
    local rc, out = lunet(roots(root), "plot-overlay-pngs -d 502 -o " .. q(root .. "/ov"))
    assert.equal(0, rc, out)
    local plans = json.read(root .. "/pre/Dataset502_Overlay3D/nnUNetPlans.json")
    local shape = plans.configurations["3d_fullres"].median_image_size_in_voxels
    for k = 0, 2 do
      local t = image.read(string.format("%s/ov/ov_%03d.png", root, k)).data
      assert.same({ 4, 1, math.floor(shape[2]), math.floor(shape[3]) }, t.shape)
    end
  end)
end)
