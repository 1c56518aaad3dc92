-- nnU-Net's planner arguments -overwrite_target_spacing and -preprocessor_name: plans equal to nnunetv2 2.8.1's
-- ExperimentPlanner(overwrite_target_spacing=...) byte by byte (fixtures from
-- scripts/fixtures/make_plan_option_fixtures.py), through lunet.planner and through `lunet plan`.
local json = require "lunet.util.json"
local planner = require "lunet.planner"
local paths = require "lunet.util.paths"

local FIX = "spec/fixtures/plan_options/"
local ROOT = os.getenv("PWD") or "."

local function read_text(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- runs `lunet ARGS` with the three roots under dir; returns exit code, stdout + stderr
local function lunet_cli(dir, argv)
  local log = dir .. "/last.log"
  local env = ("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre nnUNet_results=%s/res "):format(dir, dir, dir)
  local _, _, code = os.execute(env .. ROOT .. "/scripts/lunet " .. argv .. " > " .. log .. " 2>&1")
  return code, read_text(log)
end

local CASES = {
  -- fixture, spacing, what the override changes against nnU-Net's default plans of the same fingerprint
  { "mr_aniso_iso", "1 1 1" },
  { "mr_aniso_xcoarse", "0.7 0.7 3.5" },
  { "abdomen_ct_lowres_coarse", "3 1.6 1.6" },
}

describe("-overwrite_target_spacing", function()
  for _, c in ipairs(CASES) do
    it(c[1] .. ": planner.plan equals nnunetv2's plans byte by byte", function()
      local d = FIX .. c[1] .. "/"
      local got = planner.plan(json.read(d .. "dataset_fingerprint.json"), {
        dataset_json = json.read(d .. "dataset.json"),
        dataset_name = read_text(d .. "dataset_name.txt"):match("%S+"),
        overwrite_target_spacing = json.read(d .. "spacing.json"),
      })
      assert.are.equal(read_text(d .. "nnUNetPlans.json"), json.encode(got, { indent = 4, sort_keys = false }))
    end)
  end

  it("changes what nnU-Net changes: the transpose, 3d_lowres and the cascade, 2d", function()
    local x = json.read(FIX .. "mr_aniso_xcoarse/nnUNetPlans.json")
    assert.are.same({ 2, 0, 1 }, x.transpose_forward)              -- default plans: { 0, 1, 2 }
    assert.are.same({ 3.5, 0.7, 0.7 }, x.configurations["3d_fullres"].spacing)
    assert.are.same({ 10, 64, 56 }, x.configurations["3d_fullres"].patch_size)
    assert.are.same({ 0.7, 0.7 }, x.configurations["2d"].spacing)
    assert.are.same({ 64, 56 }, x.configurations["2d"].patch_size)
    local a = json.read(FIX .. "abdomen_ct_lowres_coarse/nnUNetPlans.json")
    local default = json.read("spec/fixtures/plans/abdomen_ct_lowres/nnUNetPlans.json")
    assert.is_table(default.configurations["3d_lowres"])
    assert.are.same({ "2d", "3d_fullres" }, json.keys(a.configurations))
    assert.are.same({ 3.0, 1.6, 1.6 }, a.configurations["3d_fullres"].spacing)
    assert.is_false(a.configurations["3d_fullres"].batch_dice)
  end)

  it("a list of the wrong length is refused by the planner", function()
    local d = FIX .. "mr_aniso_iso/"
    local ok, err = pcall(planner.plan, json.read(d .. "dataset_fingerprint.json"),
      { dataset_json = json.read(d .. "dataset.json"), overwrite_target_spacing = { 1, 1 } })
    assert.is_false(ok)
    assert.are.equal("impossible plan from rule 'overwrite_target_spacing': overwrite_target_spacing must be a list "
      .. "of 3 numbers", err)
  end)
end)

describe("lunet plan -overwrite_target_spacing / -preprocessor_name", function()
  local dir
  before_each(function()
    dir = os.tmpname()
    os.remove(dir)
    -- the raw dataset.json and the fingerprint are all that `lunet plan` reads
    for _, c in ipairs(CASES) do
      local d = FIX .. c[1] .. "/"
      local name = read_text(d .. "dataset_name.txt"):match("%S+")
      paths.mkdirs(dir .. "/raw/" .. name)
      paths.mkdirs(dir .. "/pre/" .. name)
      os.execute(("cp %sdataset.json %s/raw/%s/ && cp %sdataset_fingerprint.json %s/pre/%s/"):format(d, dir, name, d,
        dir, name))
    end
  end)
  after_each(function() os.execute("rm -rf '" .. dir .. "'") end)

  it("writes nnunetv2's plans, with -preprocessor_name DefaultPreprocessor and -overwrite_plans_name", function()
    local code, out = lunet_cli(dir, "plan -d 611 -overwrite_target_spacing 3 1.6 1.6 -preprocessor_name " ..
      "DefaultPreprocessor -overwrite_plans_name nnUNetPlans_coarse")
    assert.are.equal(0, code, out)
    local f = dir .. "/pre/Dataset611_abdomen_ct_lowres/nnUNetPlans_coarse.json"
    local got = json.read(f)
    local exp = json.read(FIX .. "abdomen_ct_lowres_coarse/nnUNetPlans.json")
    -- the plans name also names the preprocessed data folders
    exp.plans_name = "nnUNetPlans_coarse"
    for _, cfg in pairs(exp.configurations) do
      cfg.data_identifier = cfg.data_identifier:gsub("^nnUNetPlans_", "nnUNetPlans_coarse_")
    end
    assert.are.same(exp, got)
    assert.are.equal("DefaultPreprocessor", got.configurations["2d"].preprocessor_name)
    assert.is_false(paths.exists(dir .. "/pre/Dataset611_abdomen_ct_lowres/nnUNetPlans.json"))
  end)

  it("refuses another preprocessor, a wrong spacing, before anything is written (exit 2)", function()
    for _, c in ipairs({
      { "-preprocessor_name MyPreprocessor", "lunet plan: -preprocessor_name MyPreprocessor: Lunet's preprocessing "
        .. "is nnU-Net's DefaultPreprocessor, the only name accepted" },
      { "-overwrite_target_spacing 1 1", "lunet plan: option '-overwrite_target_spacing' requires 3 arguments" },
      { "-overwrite_target_spacing 1 0 1", "lunet plan: -overwrite_target_spacing needs 3 positive numbers, got 0" },
      { "-overwrite_target_spacing 1 1 abc", "lunet plan: -overwrite_target_spacing needs 3 positive numbers, got abc" },
    }) do
      local code, out = lunet_cli(dir, "plan -d 602 " .. c[1])
      assert.are.equal(2, code, out)
      assert.truthy(out:find(c[2], 1, true), out)
      assert.are.same({ "dataset_fingerprint.json" }, paths.listdir(dir .. "/pre/Dataset602_mr_aniso"))
    end
  end)
end)
