-- Command-line mistakes are refused before any work: a malformed option of plan_and_preprocess stops it before the
-- fingerprint is written, and a configuration the plans do not have is an error naming it and listing the plans'
-- configurations (preprocess, train). A small synthetic NIfTI dataset (4 cases of 4x24x24) keeps it fast.
local lunet = require "lunet"
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local image = require "lunet.io.image"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"
local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_cli"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local NAME = "Dataset970_CliCheck"
local Z, Y, X = 4, 24, 24

local function readfile(p)
  local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s
end

-- runs `lunet ARGS`; returns ok, exit code, stdout + stderr
local function lunet_cli(args)
  local log = DIR .. "/last.log"
  local env = ("nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' " ..
    "LUA_CPATH='%s/build/?.so;;' "):format(RAW, PRE, RES, ROOT, ROOT, ROOT)
  local ok, _, code = os.execute(env .. LUNET .. " " .. args .. " > " .. log .. " 2>&1")
  return ok, code, readfile(log)
end

local function has(s, needle) assert(s:find(needle, 1, true), "expected «" .. needle .. "» in:\n" .. s) end

local function make_dataset()
  local d = RAW .. "/" .. NAME
  paths.mkdirs(d .. "/imagesTr")
  paths.mkdirs(d .. "/labelsTr")
  local geom = { sitk = { spacing = { 1, 1, 1 }, origin = { 0, 0, 0 }, direction = { 1, 0, 0, 0, 1, 0, 0, 0, 1 } } }
  for i = 0, 3 do
    local img, seg = {}, {}
    for z = 0, Z - 1 do
      for y = 0, Y - 1 do
        for x = 0, X - 1 do
          local inb = y >= 6 + i and y < 14 + i and x >= 6 and x < 14
          img[#img + 1] = (inb and 200 or 100) + ((x * 7 + y * 3 + z) % 11)
          seg[#seg + 1] = inb and 1 or 0
        end
      end
    end
    local id = ("case_%03d"):format(i)
    image.write(d .. "/imagesTr/" .. id .. "_0000.nii.gz",
      lunet.tensor(img, { shape = { 1, Z, Y, X }, dtype = "f32" }), geom)
    image.write(d .. "/labelsTr/" .. id .. ".nii.gz", lunet.tensor(seg, { shape = { 1, Z, Y, X }, dtype = "u8" }), geom)
  end
  json.write(d .. "/dataset.json", { channel_names = { ["0"] = "MR" }, labels = { background = 0, box = 1 },
    numTraining = 4, file_ending = ".nii.gz" })
end

-- every file under the dataset's nnUNet_preprocessed folder
local function written()
  local out = {}
  local function walk(p)
    if not paths.exists(p) then return end
    if paths.isdir(p) then
      for _, n in ipairs(paths.listdir(p)) do walk(p .. "/" .. n) end
    else out[#out + 1] = p end
  end
  walk(PRE .. "/" .. NAME)
  return out
end

describe("lunet CLI: mistakes are refused before any work", function()
  setup(function()
    paths.mkdirs(PRE)
    paths.mkdirs(RES)
    make_dataset()
  end)
  teardown(function() os.execute("rm -rf '" .. DIR .. "'") end)

  it("plan_and_preprocess checks every option before the fingerprint or the plans are written", function()
    local cases = {
      { "-c 2d -np abc", "lunet plan_and_preprocess: -np needs a positive integer, got abc" },
      { "-c 2d -np 0", "lunet plan_and_preprocess: -np needs a positive integer, got 0" },
      { "-c 2d 3d_fullres -np 1 2 3", "lunet plan_and_preprocess: -np has 3 numbers for 2 configurations" },
      { "-c 2d -npfp x", "lunet plan_and_preprocess: -npfp needs a positive integer, got x" },
      { "-c 2d --gpu-memory lots", "lunet plan_and_preprocess: -gpu_memory_target needs a positive number, got lots" },
      { "-c 2d -pl " .. DIR .. "/no_such_rules.lua",
        "lunet plan_and_preprocess: rule file " .. DIR .. "/no_such_rules.lua: cannot open it" },
      { "-c 2d --bogus", "lunet plan_and_preprocess: unknown option '--bogus'" },
      { "-c 2d -bogus 3", "lunet plan_and_preprocess: unknown option '-bogus'" },
      { "-c 2d -preprocessor_name Other", "lunet plan_and_preprocess: -preprocessor_name Other: Lunet's" },
      { "-c 2d -overwrite_target_spacing 1 x 1", "-overwrite_target_spacing needs 3 positive numbers, got x" },
      { "-c 2d -fpe MyExtractor", "lunet plan_and_preprocess: argument for option '-fpe' must be one of " ..
        "'DatasetFingerprintExtractor'" },
    }
    for _, c in ipairs(cases) do
      local ok, code, out = lunet_cli("plan_and_preprocess -d 970 -q " .. c[1])
      assert.is_falsy(ok, c[1] .. ": " .. out)
      assert.are.equal(2, code, c[1] .. ": " .. out)
      has(out, c[2])
      assert.are.same({}, written(), c[1])
    end
  end)

  it("every command declares its options with argparse: -h prints them, exit 0", function()
    local cli = require "lunet.cli"
    for _, name in ipairs(cli.commands()) do
      local mod = cli.command_module(name)
      assert.is_function(mod.parser, name .. " has no parser()")
      local help = mod.parser():get_help()
      -- plan-and-preprocess calls itself plan_and_preprocess, as the docs spell it
      has(help, "usage: lunet " .. (name == "plan-and-preprocess" and "plan_and_preprocess" or name) .. " [-h]")
      has(help, "-h, --help")
    end
    local ok, code, out = lunet_cli("predict -h")
    assert(ok, out)
    assert.are.equal(0, code)
    has(out, "   -np N                 host threads (default 2)")
    has(out, "   -num_parts N          predict only every N-th case")
  end)

  it("predict -np abc, a flag nobody declares, a negative count: exit 2 before anything runs", function()
    local base = "predict -i " .. DIR .. "/in -o " .. DIR .. "/out -d 970 -c 2d "
    for _, c in ipairs({
      { "-np abc", "lunet predict: -np needs a positive integer, got abc" },
      { "-npp -1", "lunet predict: -npp needs an integer >= 0, got -1" },
      { "-nump 2", "lunet predict: unknown option '-nump'\nDid you mean one of these: '-num_parts'?" },
      { "-f 0 two", "lunet predict: -f needs fold numbers (0, 1, ...) or 'all', got two" },
      { "-f 0 all", "lunet predict: -f: 'all' cannot be combined with fold numbers" },
      { "--stream maybe", "lunet predict: argument for option '--stream' must be one of 'auto', 'on', 'off'" },
    }) do
      local ok, code, out = lunet_cli(base .. c[1])
      assert.is_falsy(ok, c[1])
      assert.are.equal(2, code, c[1] .. ": " .. out)
      has(out, c[2])
      has(out, "usage: lunet predict [-h] -i IN -o OUT")
      assert.is_false(paths.exists(DIR .. "/out"), c[1])
    end
    -- the same options parsed: nnU-Net's spellings, Lunet's older dashed ones, a value glued with =
    local p = require "lunet.cli.predict"
    local o = p.parse({ "-i", "a", "-o", "b", "-d", "970", "-c", "2d", "-np=3", "-num_parts", "4", "--part-id", "1",
      "--disable-tta", "--save_probabilities", "-step_size", "0.25", "-chk", "checkpoint_best.pth" })
    assert.are.same({ input = "a", output = "b", dataset = "970", configuration = "2d", threads = 3, num_parts = 4,
      part_id = 1, disable_tta = true, save_probabilities = true, step_size = 0.25, checkpoint = "checkpoint_best" }, o)
  end)

  it("the commands find-best writes into inference_instructions.txt parse", function()
    local info = { dataset_name_or_id = "970", folds = { 0, 1 }, best_model_or_ensemble = {
      selected_model_or_models = { { configuration = "2d", plans_identifier = "nnUNetPlans", trainer = "nnUNetTrainer" },
        { configuration = "3d_fullres", plans_identifier = "nnUNetPlans", trainer = "nnUNetTrainer" } },
      postprocessing_file = "/r/postprocessing.pkl", some_plans_file = "/r/plans.json" } }
    local cli, args = require "lunet.cli", require "lunet.cli.args"
    local n = 0
    -- find_best looks for a cascade's previous stage under nnUNet_results (none here)
    paths.set_roots { raw = RAW, preprocessed = PRE, results = RES }
    local ok, text = pcall(require("lunet.find_best").instructions, info)
    paths.set_roots { raw = false, preprocessed = false, results = false } -- back to the environment's
    assert(ok, text)
    for line in text:gmatch("[^\n]+") do
      if line:match("^lunet ") then
        local words = {}
        for w in line:gmatch("%S+") do words[#words + 1] = w end
        local r = args.parse(cli.command_module(words[2]).parser(), table.move(words, 3, #words, 1, {}))
        assert.is_table(r, line)
        n = n + 1
      end
    end
    assert.are.equal(4, n) -- two predictions, the ensemble, the postprocessing
  end)

  it("plan_and_preprocess --verify_dataset_integrity stops on a broken dataset before anything is written", function()
    local d = RAW .. "/" .. NAME
    local label = d .. "/labelsTr/case_002.nii.gz"
    assert(os.rename(label, label .. ".away"))
    local ok, code, out = lunet_cli("plan_and_preprocess -d 970 -q --no_pp --verify_dataset_integrity")
    assert(os.rename(label .. ".away", label))
    assert.is_falsy(ok, out)
    assert.are.equal(1, code, out)
    has(out, "case_002")
    assert.are.same({}, written())
  end)

  it("train and predict refuse malformed numbers while parsing", function()
    local train = require "lunet.cli.train"
    for _, a in ipairs({ { "--epochs", "0" }, { "-np", "abc" }, { "--iters", "1.5" }, { "-num_gpus", "2" },
                         { "-pretrained", "w.pth" } }) do -- not -p with "retrained" glued to it
      local o, code = train.parse({ "970", "2d", "0", a[1], a[2] })
      assert.is_nil(o)
      assert.are.equal(2, code)
    end
    -- nnUNetv2_train's own spellings: --c, --val, -num_gpus 1, --use_compressed
    local o = train.parse({ "970", "3d_fullres", "all", "--c", "-num_gpus", "1", "--use_compressed", "--val_best",
      "-tr", "nnUNetTrainer", "-p", "P", "--seed", "-3" })
    assert.are.same({ dataset = "970", configuration = "3d_fullres", fold = "all", continue = true, val_best = true,
      trainer = "nnUNetTrainer", plans = "P", seed = -3 }, o)
    assert.is_true(train.parse({ "970", "2d", "1", "--val" }).val_only)
    local predict = require "lunet.cli.predict"
    local base = { "-i", "a", "-o", "b", "-d", "970", "-c", "2d" }
    for _, a in ipairs({ { "-np", "0", "-np needs a positive integer, got 0" },
                         { "-np", "abc", "-np needs a positive integer, got abc" },
                         { "--step-size", "0", "-step_size needs a number in (0, 1], got 0" },
                         { "-step_size", "1.5", "-step_size needs a number in (0, 1], got 1.5" },
                         { "-npp", "-1", "-npp needs an integer >= 0, got -1" },
                         { "-num_parts", "two", "-num_parts needs a positive integer, got two" } }) do
      local args = table.move(base, 1, #base, 1, {})
      args[#args + 1] = a[1]; args[#args + 1] = a[2]
      local ok, err = pcall(predict.parse, args)
      assert.is_false(ok)
      assert.are.equal(a[3], err)
    end
  end)

  it("nnU-Net's -device cpu|cuda|mps picks the matching OpenCL device or fails naming the devices", function()
    local resolve = require("lunet.util.device_arg").resolve
    local cpu_only = { { index = 0, name = "pthread", type = "cpu", vendor = "GenuineIntel", platform = "PoCL" } }
    local both = { cpu_only[1], { index = 1, name = "AMD", type = "gpu", vendor = "AMD", platform = "AMD" },
                   { index = 2, name = "H100", type = "gpu", vendor = "NVIDIA Corporation", platform = "NVIDIA CUDA" } }
    assert.is_nil(resolve(nil, both))
    assert.are.equal(0, resolve("cpu", both))
    assert.are.equal(2, resolve("cuda", both))     -- an NVIDIA device first
    assert.are.equal(1, resolve("1", both))
    assert.are.equal(1, resolve("cuda", { cpu_only[1], both[2] })) -- else any GPU
    for _, c in ipairs { { "cuda", "no OpenCL GPU device" }, { "mps", "Metal is not available" },
                         { "3", "no such OpenCL device" }, { "tpu", "expected cpu, cuda or an OpenCL device index" } } do
      local ok, err = pcall(resolve, c[1], cpu_only)
      assert.is_false(ok)
      assert.truthy(tostring(err):find(c[2], 1, true), err)
      if c[1] ~= "mps" then assert.truthy(tostring(err):find("0: pthread (cpu)", 1, true), err) end
    end
    -- the commands refuse before any work (this machine has no GPU: cuda is an error, not a silent CPU run)
    local has_gpu = false
    for _, d in ipairs(lunet.devices()) do if d.type == "gpu" then has_gpu = true end end
    if not has_gpu then
      local o, code = require("lunet.cli.train").parse({ "970", "2d", "0", "-device", "cuda" })
      assert.is_nil(o)
      assert.are.equal(2, code)
      assert.are.equal(2, require("lunet.cli").main({ "predict", "-i", "a", "-o", "b", "-d", "970", "-c", "2d",
        "-device", "cuda" }))
    end
    local o = require("lunet.cli.train").parse({ "970", "2d", "0", "-device", "cpu" })
    assert.are.equal(0, o.device)
  end)

  describe("a configuration the plans do not have", function()
    setup(function()
      local ok, _, out = lunet_cli("plan_and_preprocess -d 970 -q --no_pp")
      assert(ok, out)
    end)

    it("preprocess: an error naming it and listing the plans' configurations, before any case is written", function()
      local plans = json.read(PRE .. "/" .. NAME .. "/nnUNetPlans.json")
      local names = {}
      for k in pairs(plans.configurations) do names[#names + 1] = k end
      table.sort(names)
      local list = table.concat(names, ", ")
      local pfile = PRE .. "/" .. NAME .. "/nnUNetPlans.json"
      local ok, code, out = lunet_cli("preprocess 970 -q -c 2d 4d_superres")
      assert.is_falsy(ok, out)
      assert.are.equal(2, code)
      has(out, "lunet preprocess: configuration 4d_superres is not in " .. pfile .. " (its configurations: " .. list
        .. ")")
      assert.is_false(paths.isdir(PRE .. "/" .. NAME .. "/nnUNetPlans_2d"))
      -- the names nnU-Net's planner may leave out are skipped, but not when nothing asked for is planned
      if not plans.configurations["3d_lowres"] then
        ok, _, out = lunet_cli("preprocess 970 -q -c 3d_lowres")
        assert.is_falsy(ok, out)
        has(out, "none of the configurations 3d_lowres is in " .. pfile)
      end
    end)

    it("train: an error naming it and listing the plans' configurations, exit status non-zero", function()
      local ok, _, out = lunet_cli("train 970 4d_superres 0 -q")
      assert.is_falsy(ok, out)
      has(out, "configuration '4d_superres' is not in the plans")
      has(out, "3d_fullres")
      assert.is_false(paths.exists(RES .. "/" .. NAME))
    end)
  end)

  it("nnU-Net's -d: on fingerprint and plan, and several datasets at once on plan_and_preprocess", function()
    local ok, code, out = lunet_cli("fingerprint -d 970 -q")
    assert(ok, out)
    ok, code, out = lunet_cli("plan -d 970")
    assert(ok, out)
    assert.is_true(paths.isfile(PRE .. "/" .. NAME .. "/nnUNetPlans.json"))
    -- the second dataset does not exist: the first is done, the run fails naming the second
    ok, code, out = lunet_cli("plan_and_preprocess -d 970 979 -q --no_pp")
    assert.is_falsy(ok, out)
    assert.are_not.equal(0, code)
    has(out, "979")
    assert.is_true(paths.isfile(PRE .. "/" .. NAME .. "/dataset_fingerprint.json"))
  end)
end)
