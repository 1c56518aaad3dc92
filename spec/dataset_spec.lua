-- lunet.util.paths, lunet.dataset and lunet.labels: id/name resolution as nnU-Net's maybe_convert_to_dataset_name, case discovery and
-- label semantics compared with nnunetv2's own output (spec/fixtures/dataset/*_expected.json, made by
-- scripts/fixtures/make_dataset_fixtures.py).
local dataset = require "lunet.dataset"
local labels = require "lunet.labels"
local paths = require "lunet.util.paths"
local json = require "lunet.util.json"

local FIX = "spec/fixtures/dataset/"

local function tmpdir()
  local d = os.tmpname(); os.remove(d); assert(os.execute("mkdir -p '" .. d .. "'")); return d
end

-- Lua cannot setenv: run a snippet in a child lua5.4 with nnU-Net's variables set; returns its stdout, exit code.
local function with_env(env, code)
  local pre = {}
  for k, v in pairs(env) do pre[#pre + 1] = k .. "='" .. v .. "'" end
  local f = os.tmpname()
  local h = assert(io.open(f, "w")); h:write(code); h:close()
  local p = io.popen("env -u nnUNet_raw -u nnUNet_preprocessed -u nnUNet_results " .. table.concat(pre, " ") ..
    " lua5.4 " .. f .. " 2>&1")
  local out = p:read("a")
  local ok, _, rc = p:close()
  os.remove(f)
  return out, ok and 0 or rc
end

describe("lunet.util.paths", function()
  local root
  setup(function()
    root = tmpdir()
    for _, d in ipairs({ "raw/Dataset004_Hippocampus", "raw/Dataset027_ACDC", "pre/Dataset027_ACDC",
      "res/Dataset027_ACDC", "raw/Dataset042_Twin", "pre/Dataset042_Other", "res/Dataset120_Only" }) do
      assert(os.execute("mkdir -p '" .. root .. "/" .. d .. "'"))
    end
    assert(io.open(root .. "/raw/Dataset005_file", "w")):close()   -- a file, not a folder: never a candidate
  end)
  teardown(function() os.execute("rm -rf '" .. root .. "'") end)

  local function resolve(arg, env)
    env = env or { nnUNet_raw = root .. "/raw", nnUNet_preprocessed = root .. "/pre", nnUNet_results = root .. "/res" }
    return with_env(env, [[
      local ok, r = pcall(require("lunet.util.paths").dataset_name, ]] .. arg .. [[)
      io.write(ok and "OK " or "ERR ", tostring(r))]])
  end

  it("resolves ids, id strings, full and bare names across the three roots", function()
    assert.are.equal("OK Dataset004_Hippocampus", resolve("4"))
    assert.are.equal("OK Dataset004_Hippocampus", resolve("'4'"))
    assert.are.equal("OK Dataset004_Hippocampus", resolve("' 004'"))
    assert.are.equal("OK Dataset027_ACDC", resolve("27"))              -- same name in 3 roots: one dataset
    assert.are.equal("OK Dataset120_Only", resolve("120"))             -- found in results only
    assert.are.equal("OK Dataset999_Any", resolve("'Dataset999_Any'")) -- a full name is taken as is
    assert.are.equal("OK Dataset027_ACDC", resolve("'ACDC'"))
  end)

  it("errors for no match, several matches, and unset roots, naming the id and the folders", function()
    local out = resolve("42")
    assert.matches("^ERR more than one dataset name found for dataset id 42", out)
    assert.matches("Dataset042_Other, Dataset042_Twin", out, 1, true)
    out = resolve("5")
    assert.matches("^ERR could not find a dataset with the id 5 %(no folder Dataset005%*", out)
    assert.matches("nnUNet_raw=" .. root:gsub("%p", "%%%0") .. "/raw", out)
    out = resolve("'Nope'")
    assert.matches("^ERR could not find a dataset named 'Nope'", out)
    out = resolve("4", { nnUNet_preprocessed = root .. "/pre" })
    assert.matches("^ERR could not find a dataset with the id 4", out)
    assert.matches("nnUNet_raw=None", out, 1, true)
    out = with_env({}, [[local ok, e = pcall(require("lunet.util.paths").raw) io.write(tostring(e))]])
    assert.matches("nnUNet_raw is not defined", out, 1, true)
  end)

  it("builds nnU-Net's folder names", function()
    assert.are.equal(4, paths.dataset_id("Dataset004_Hippocampus"))
    assert.are.equal(120, paths.dataset_id("/x/y/Dataset120_Only/"))
    assert.has_error(function() paths.dataset_id("Task04_Hippocampus") end)
    assert.are.equal("nnUNetTrainer__nnUNetPlans__3d_fullres", paths.model_identifier())
    assert.are.equal("T__P__2d", paths.model_identifier("T", "P", "2d"))
    assert.are.same({ "nnUNetTrainer_5epochs", "nnUNetResEncUNetMPlans", "3d_lowres" },
      { paths.parse_model_identifier("/r/D/nnUNetTrainer_5epochs__nnUNetResEncUNetMPlans__3d_lowres") })
    assert.are.equal("ensemble___A__P__2d___A__P__3d_fullres___0_1_2_3_4",
      paths.ensemble_name("/r/A__P__2d", "/r/A__P__3d_fullres/", { 0, 1, 2, 3, 4 }))
    assert.are.equal("crossval_results_folds_0_1_2_3_4", paths.crossval_folder_name())
    local out = with_env({ nnUNet_results = root .. "/res" },
      [[io.write(require("lunet.util.paths").output_folder(120, "nnUNetTrainer", "nnUNetPlans", "2d", 3))]])
    assert.are.equal(root .. "/res/Dataset120_Only/nnUNetTrainer__nnUNetPlans__2d/fold_3", out)
  end)
end)

describe("lunet.dataset", function()
  it("finds cases exactly as nnunetv2's get_filenames_of_train_images_and_targets", function()
    local expected = json.read(FIX .. "discovery_expected.json")
    local folder = FIX .. "discovery/Dataset042_Names"
    local ds = dataset.open(folder)
    assert.are.equal(42, ds.id)
    assert.are.equal("Dataset042_Names", ds.name)
    local ids = {}
    for i, c in ipairs(ds.cases) do ids[i] = c.id end
    assert.are.same(expected.identifiers, ids)
    for _, c in ipairs(ds.cases) do
      local e = expected.cases[c.id]
      local imgs = {}
      for i, p in ipairs(c.images) do imgs[i] = p:sub(#folder + 2) end
      assert.are.same(e.images, imgs)
      assert.are.equal(e.label, c.label:sub(#folder + 2))
    end
    assert.are.same({ "CT", "MR" }, ds.channels)
    assert.are.equal(2, ds.num_channels)
    assert.are.equal(".nii.gz", ds.file_ending)
    assert.are.equal(7, ds.num_training)
  end)

  it("keeps dataset.label_info as the name of lunet.labels.info", function()
    assert.are.equal(labels.info, dataset.label_info)
    local dj = { labels = { background = 0, a = { 1, 2 }, b = 2 }, regions_class_order = { 1, 2 } }
    assert.are.same(labels.info(dj.labels, dj.regions_class_order), labels.of_dataset_json(dj))
  end)

  it("computes label semantics as nnunetv2's LabelManager, including its errors", function()
    for _, rec in ipairs(json.read(FIX .. "labels_expected.json")) do
      local rco = rec.regions_class_order
      if rco == json.null then rco = nil end
      local ok, info = pcall(labels.info, rec.labels, rco)
      local what = json.encode(rec.labels)
      if rec.error then
        assert(not ok, what .. " should fail like nnU-Net: " .. rec.error)
      else
        assert(ok, what .. ": " .. tostring(info))
        local e = rec.expect
        assert.are.same(e.all_labels, info.all_labels, what)
        assert.are.equal(e.has_regions, info.has_regions, what)
        assert.are.equal(e.num_segmentation_heads, info.num_segmentation_heads, what)
        assert.are.same(e.foreground_labels, info.foreground_labels, what)
        if e.ignore_label == json.null then assert.is_nil(info.ignore_label, what)
        else assert.are.equal(e.ignore_label, info.ignore_label, what) end
        if e.regions == json.null then assert.is_nil(info.regions, what)
        else
          local got = {}
          for i, r in ipairs(info.regions) do got[i] = type(r) == "table" and { table.unpack(r) } or r end
          local want = {}
          for i, r in ipairs(e.regions) do want[i] = type(r) == "table" and { table.unpack(r) } or r end
          assert.are.same(want, got, what)
        end
      end
    end
  end)

  it("opens by id through nnUNet_raw, with test cases and the 'dataset' dict form", function()
    local raw = tmpdir()
    assert(os.execute("cp -r " .. FIX .. "verify/Dataset101_Verify '" .. raw .. "/'"))
    local dsdir = raw .. "/Dataset101_Verify"
    local dj = json.read(dsdir .. "/dataset.json")
    dj.dataset = { zz = { images = { "imagesTr/case_001_0000.nii.gz", "/abs/x_0001.nii.gz" }, label = "labelsTr/case_001.nii.gz" },
                   aa = { images = { "imagesTr/case_002_0000.nii.gz" }, label = "lab.nii.gz" } }
    json.write(raw .. "/dict.json", dj)
    local out = with_env({ nnUNet_raw = raw }, [[
      local ds = require("lunet.dataset").open(101)
      io.write(ds.name, " ", ds.id, " ", #ds.cases, " ", ds.cases[1].id, " ", #ds.cases[1].images, " ",
        ds.cases[5].label, " ", #ds.test_cases, " ", ds.test_cases[1].id, " ", #ds.test_cases[1].images, " ",
        ds.labels.num_segmentation_heads, " ", ds:case("case_004").id, " ", tostring(ds:case("nope")))]])
    assert.are.equal(("Dataset101_Verify 101 5 case_001 2 %s/labelsTr/case_005.nii.gz 1 test_001 2 3 case_004 nil")
      :format(dsdir), out)
    os.rename(raw .. "/dict.json", dsdir .. "/dataset.json")
    os.execute("rm -rf '" .. dsdir .. "/imagesTr' '" .. dsdir .. "/labelsTr'")
    local ds = dataset.open(dsdir)
    assert.are.equal(2, #ds.cases)
    assert.are.equal("aa", ds.cases[1].id)
    assert.are.equal(dsdir .. "/lab.nii.gz", ds.cases[1].label)
    assert.are.same({ dsdir .. "/imagesTr/case_001_0000.nii.gz", "/abs/x_0001.nii.gz" }, ds.cases[2].images)
    os.execute("rm -rf '" .. raw .. "'")
  end)

  it("raises naming dataset.json when it cannot be used", function()
    local raw = tmpdir()
    local d = raw .. "/Dataset003_Bad"
    assert(os.execute("mkdir -p '" .. d .. "/imagesTr' '" .. d .. "/labelsTr'"))
    local function put(s) local f = assert(io.open(d .. "/dataset.json", "w")); f:write(s); f:close() end
    put('{"channel_names": {"0": "CT"}, "labels": {"background": 0}, "file_ending": ".nii.gz"}')
    local ok, err = pcall(dataset.open, d)
    assert.is_false(ok)
    assert.matches(d .. "/dataset.json: required key(s) missing: numTraining", err, 1, true)
    put('{"channel_names": {"0": "CT"}, "labels": {"bg": 0}, "numTraining": 0, "file_ending": ".nii.gz"}')
    ok, err = pcall(dataset.open, d)
    assert.matches("dataset.json: labels: background label not declared", err, 1, true)
    put('{"channel_names": {"0": "CT"}, "labels": {"background": 0, ')
    ok, err = pcall(dataset.open, d)
    assert.matches(d .. "/dataset.json: ", err, 1, true)
    assert.matches("line 1", err, 1, true)
    put('{"modality": {"0": "CT", "1": "PET"}, "labels": {"background": 0}, "numTraining": 0, "file_ending": ".nii.gz"}')
    local ds = dataset.open(d)
    assert.are.same({ "CT", "PET" }, ds.channels)   -- legacy 'modality' key
    assert.are.equal(0, #ds.cases)
    os.execute("rm -rf '" .. raw .. "'")
  end)
end)
