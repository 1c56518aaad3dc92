-- Planner parity with nnunetv2 2.8.1 (fixtures from scripts/fixtures/make_plan_fixtures.py) and rule-file behaviour.
local json = require "lunet.util.json"
local planner = require "lunet.planner"

local FIX = "spec/fixtures/plans"
local PRESETS = {
  { "default", "nnUNetPlans" }, { "resenc_m", "nnUNetResEncUNetMPlans" },
  { "resenc_l", "nnUNetResEncUNetLPlans" }, { "resenc_xl", "nnUNetResEncUNetXLPlans" },
}

local function fixture_dirs()
  local out = {}
  local p = io.popen('ls -d ' .. FIX .. '/*/ 2>/dev/null')
  for l in p:lines() do out[#out + 1] = l:gsub("/$", "") end
  p:close()
  table.sort(out)
  return out
end

local function read_text(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

local function write_text(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Field-by-field comparison: integers and strings exact (an int must stay an int), floats relative 1e-6.
local function diff(got, exp, path, errs)
  if type(exp) == "number" then
    if type(got) ~= "number" then errs[#errs + 1] = path .. ": expected number, got " .. tostring(got); return end
    if math.type(exp) == "integer" then
      if math.type(got) ~= "integer" or got ~= exp then
        errs[#errs + 1] = string.format("%s: expected int %s, got %s (%s)", path, exp, got, math.type(got))
      end
    elseif math.type(got) ~= "float" or math.abs(got - exp) > 1e-6 * math.max(math.abs(exp), 1e-300) then
      errs[#errs + 1] = string.format("%s: expected float %.17g, got %s", path, exp, tostring(got))
    end
  elseif type(exp) == "table" and exp ~= json.null then
    if type(got) ~= "table" then errs[#errs + 1] = path .. ": expected table, got " .. tostring(got); return end
    for k, v in pairs(exp) do diff(got[k], v, path .. "." .. tostring(k), errs) end
    for k in pairs(got) do
      if exp[k] == nil then errs[#errs + 1] = path .. "." .. tostring(k) .. ": not in nnU-Net's plans" end
    end
  elseif got ~= exp then
    errs[#errs + 1] = string.format("%s: expected %s, got %s", path, tostring(exp), tostring(got))
  end
  return errs
end

local function plan_fixture(dir, rules)
  local fp = json.read(dir .. "/dataset_fingerprint.json")
  local dj = json.read(dir .. "/dataset.json")
  local name = read_text(dir .. "/dataset_name.txt"):match("^%s*(.-)%s*$")
  return planner.plan(fp, { rules = rules, dataset_json = dj, dataset_name = name })
end

local function tmpname(suffix)
  local n = os.tmpname()
  os.remove(n)
  return n .. suffix
end

describe("planner parity with nnunetv2", function()
  local dirs = fixture_dirs()

  it("has at least 8 fixture datasets", function()
    assert.is_true(#dirs >= 8, "found " .. #dirs .. " fixture datasets under " .. FIX)
  end)

  for _, dir in ipairs(dirs) do
    for _, pr in ipairs(PRESETS) do
      it(dir:match("[^/]+$") .. " / " .. pr[1] .. " equals " .. pr[2] .. ".json field by field and byte by byte",
        function()
          local got = plan_fixture(dir, pr[1])
          local exp_text = read_text(dir .. "/" .. pr[2] .. ".json")
          local exp = json.decode(exp_text, pr[2])
          local errs = diff(got, exp, pr[2], {})
          assert.are.same({}, errs)
          assert.are.equal(exp_text, json.encode(got, { indent = 4, sort_keys = false }))
        end)
    end
  end
end)

describe("planner worked examples (Hippocampus, as nnunetv2's ExperimentPlanner plans it)", function()
  local fp = { spacings = {}, shapes_after_crop = {}, median_relative_size_after_cropping = 1.0,
               foreground_intensity_properties_per_channel = json.object({}) }
  for i = 1, 260 do fp.spacings[i] = { 1.0, 1.0, 1.0 }; fp.shapes_after_crop[i] = { 36, 50, 35 } end
  local dj = { channel_names = { ["0"] = "MRI" }, labels = { background = 0, Anterior = 1, Posterior = 2 },
               numTraining = 260, file_ending = ".nii.gz" }
  it("3d_fullres [40,56,40] batch 9, 2d [56,40] batch 366", function()
    local p = planner.plan(fp, { dataset_json = dj, dataset_name = "Dataset004_Hippocampus" })
    local f, c2 = p.configurations["3d_fullres"], p.configurations["2d"]
    assert.are.same({ 40, 56, 40 }, f.patch_size)
    assert.are.equal(9, f.batch_size)
    assert.are.same({ 56, 40 }, c2.patch_size)
    assert.are.equal(366, c2.batch_size)
    assert.is_nil(p.configurations["3d_lowres"])
    local ctx = { rules = require "lunet.rules.default", num_classes = 3 }
    assert.are.equal(19174400, ctx.rules.estimate_vram(ctx, f.patch_size, f.architecture))
  end)
  it("ResEnc M/L/XL batch sizes 58/178/183 (3d) and 1618/4554/6711 (2d)", function()
    local want = { resenc_m = { 58, 1618 }, resenc_l = { 178, 4554 }, resenc_xl = { 183, 6711 } }
    for preset, w in pairs(want) do
      local p = planner.plan(fp, { dataset_json = dj, rules = preset })
      assert.are.equal(w[1], p.configurations["3d_fullres"].batch_size, preset)
      assert.are.equal(w[2], p.configurations["2d"].batch_size, preset)
    end
  end)
  it("deep supervision weights drop the coarsest output", function()
    local r = require "lunet.rules.default"
    local w = r.deep_supervision_weights({ rules = r }, 3)
    assert.near(2 / 3, w[1], 1e-12); assert.near(1 / 3, w[2], 1e-12); assert.are.equal(0, w[3])
  end)
end)

describe("rule files", function()
  local dir = FIX .. "/ct_iso"
  local files = {}
  local function rule_file(src)
    local p = tmpname(".lua")
    write_text(p, src)
    files[#files + 1] = p
    return p
  end
  teardown(function() for _, p in ipairs(files) do os.remove(p) end end)

  it("a user rule file replacing the patch size rule and the epoch count takes effect", function()
    local path = rule_file([[
local base = require "lunet.rules.default"
return base.extend {
  patch_size = function(ctx, spacing, median)
    if #spacing == 3 then return { 32, 32, 32 } end
    return base.patch_size(ctx, spacing, median)
  end,
  trainer = { num_epochs = 50 },
}
]])
    local p = plan_fixture(dir, path)
    local base = plan_fixture(dir, "default")
    assert.are.same({ 32, 32, 32 }, p.configurations["3d_fullres"].patch_size)
    assert.are_not.same(base.configurations["3d_fullres"].patch_size, p.configurations["3d_fullres"].patch_size)
    assert.are.same(base.configurations["2d"].patch_size, p.configurations["2d"].patch_size)
    local r = planner.load_rules(path)
    assert.are.equal(50, r.trainer.num_epochs)
    assert.are.equal(250, r.trainer.num_iterations_per_epoch)   -- merged, not replaced
    assert.are.equal(1000, require("lunet.rules.default").trainer.num_epochs)  -- base untouched
  end)

  it("overwrite_target_spacing, as rules/default.lua documents it, forces the 3d_fullres spacing", function()
    local path = rule_file("return { overwrite_target_spacing = { 2.0, 1.5, 1.5 } }\n")
    local p = plan_fixture(dir, path)
    assert.are.same({ 2.0, 1.5, 1.5 }, p.configurations["3d_fullres"].spacing)
  end)

  it("a plain table of overrides is applied on top of the default rules", function()
    local path = rule_file("return { gpu_memory_gb = 4, trainer = { initial_lr = 0.001 } }\n")
    local r = planner.load_rules(path)
    assert.are.equal(4, r.gpu_memory_gb)
    assert.are.equal(0.001, r.trainer.initial_lr)
    assert.are.equal(0.99, r.trainer.momentum)
  end)

  it("a syntax error is reported with the file and line", function()
    local path = rule_file("local base = require 'lunet.rules.default'\n\nreturn base.extend { patch_size = function(ctx\n")
    local ok, err = pcall(plan_fixture, dir, path)
    assert.is_false(ok)
    assert.matches(path:gsub("%p", "%%%0") .. ":%d+:", err)
  end)

  it("a runtime error inside a rule names the rule, the file and the line", function()
    local path = rule_file([[
local base = require "lunet.rules.default"
return base.extend {
  batch_size = function(ctx, estimate)
    return estimate.nope + 1
  end,
}
]])
    local ok, err = pcall(plan_fixture, dir, path)
    assert.is_false(ok)
    assert.matches("rule 'batch_size'", err, 1, true)
    assert.matches(path:gsub("%p", "%%%0") .. ":4:", err)
  end)

  it("a rule that never finishes fails after the time limit, naming the file and the rule; the hook is removed",
    function()
    local path = rule_file([[
local base = require "lunet.rules.default"
return base.extend {
  batch_size = function(ctx, estimate)
    local n = 0
    while true do pcall(function() while true do n = n + 1 end end) end   -- a pcall must not swallow the limit
  end,
}
]])
    local fp = json.read(dir .. "/dataset_fingerprint.json")
    local dj = json.read(dir .. "/dataset.json")
    local t0 = os.time()
    local outer, omask, ocount = debug.gethook()   -- nil, or a coverage tool's
    local ok, err = pcall(planner.plan, fp, { rules = path, dataset_json = dj, rule_timeout = 0.3 })
    assert.is_false(ok)
    assert.is_true(os.time() - t0 < 10)
    assert.matches("rule file " .. path .. ": rule 'batch_size' did not finish within 0.3 s", err, 1, true)
    assert.are.equal(outer, debug.gethook())
    -- the environment variable sets it too; a hook set before planning is put back
    local mine = function() end
    debug.sethook(mine, "", 1e9)
    local getenv = os.getenv
    os.getenv = function(k) if k == "LUNET_RULE_TIMEOUT" then return "0.2" end return getenv(k) end
    local env_ok, env_err = pcall(planner.plan, fp, { rules = path, dataset_json = dj })
    os.getenv = getenv
    local hook = debug.gethook()
    if outer then debug.sethook(outer, omask, ocount) else debug.sethook() end
    assert.is_false(env_ok)
    assert.matches("rule 'batch_size' did not finish within 0.2 s", env_err, 1, true)
    assert.are.equal(mine, hook)
    -- a rule file whose top-level code never ends
    local hang = rule_file("while true do end\n")
    local okl, errl = pcall(planner.plan, fp, { rules = hang, dataset_json = dj, rule_timeout = 0.2 })
    assert.is_false(okl)
    assert.matches("rule file " .. hang .. ": did not finish loading within 0.2 s", errl, 1, true)
    assert.are.equal(outer, debug.gethook())
    assert.has_error(function() planner.plan(fp, { rules = path, dataset_json = dj, rule_timeout = "soon" }) end,
      "rule_timeout must be a number of seconds >= 0 (0 or off: no limit), got 'soon'")
  end)

  it("the time limit costs little: presets run without it, a rule file with it well under 2x", function()
    local path = rule_file("return { gpu_memory_gb = 8 }\n")
    local fp = json.read(dir .. "/dataset_fingerprint.json")
    local dj = json.read(dir .. "/dataset.json")
    local function time(rules, timeout)
      local best = math.huge
      for _ = 1, 5 do
        local t0 = os.clock()
        for _ = 1, 10 do planner.plan(fp, { rules = rules, dataset_json = dj, rule_timeout = timeout }) end
        best = math.min(best, os.clock() - t0)
      end
      return best
    end
    local off, on = time(path, 0), time(path, 10)
    assert.is_true(on < off * 2 + 0.005, string.format("with the limit %.4f s, without %.4f s", on, off))
    -- the same plans either way
    assert.are.same(planner.plan(fp, { rules = path, dataset_json = dj, rule_timeout = 0 }),
      planner.plan(fp, { rules = path, dataset_json = dj }))
  end)

  it("rejects a patch not divisible by 2^pools, naming the rule", function()
    local path = rule_file([[
local base = require "lunet.rules.default"
return base.extend { patch_size = function(ctx, spacing) return #spacing == 3 and { 30, 30, 30 } or { 30, 30 } end }
]])
    local ok, err = pcall(plan_fixture, dir, path)
    assert.is_false(ok)
    assert.matches("impossible plan from rule 'patch_size'", err, 1, true)
    assert.matches("not divisible", err, 1, true)
  end)

  it("rejects batch size < 1 and spacing <= 0, naming the rule", function()
    local ok, err = pcall(plan_fixture, dir, { batch_size = function() return 0 end })
    assert.is_false(ok)
    assert.matches("impossible plan from rule 'batch_size'", err, 1, true)
    ok, err = pcall(plan_fixture, dir, { target_spacing = function() return { 1.0, 0.0, 1.0 } end })
    assert.is_false(ok)
    assert.matches("impossible plan from rule 'target_spacing'", err, 1, true)
  end)

  it("an unknown top-level key in a rule file is an error naming the file and the key (both file forms)", function()
    local path = rule_file("return { gpu_memory_gb = 4, pach_size = function() end }\n")
    local ok, err = pcall(planner.load_rules, path)
    assert.is_false(ok)
    assert.matches("rule file " .. path .. ": unknown rule 'pach_size' (known: ", err, 1, true)
    assert.matches("patch_size", err, 1, true)
    path = rule_file("local base = require 'lunet.rules.resenc_l'\nreturn base.extend { trainr = { num_epochs = 5 } }\n")
    ok, err = pcall(plan_fixture, dir, path)
    assert.is_false(ok)
    assert.matches("rule file " .. path .. ": unknown rule 'trainr'", err, 1, true)
  end)

  it("rejects zero or negative feature counts at plan time, naming the rule", function()
    for _, c in ipairs({ { "base_num_features", 0 }, { "max_features_3d", -320 }, { "max_features_2d", 1.5 } }) do
      local path = rule_file(("return { %s = %s }\n"):format(c[1], c[2]))
      local ok, err = pcall(plan_fixture, dir, path)
      assert.is_false(ok, c[1])
      assert.matches(("impossible plan from rule '%s': %s must be a positive integer, got %s"):format(c[1], c[1],
        tostring(c[2])), err, 1, true)
    end
    local ok, err = pcall(plan_fixture, dir, { features_per_stage = function(_, n) local t = {}
      for s = 1, n do t[s] = 32 - 8 * s end
      return t end })
    assert.is_false(ok)
    assert.matches("impossible plan from rule 'features_per_stage'", err, 1, true)
    assert.matches("must have a positive integer count", err, 1, true)
  end)

  it("unknown presets are rejected with the list of presets", function()
    local ok, err = pcall(planner.load_rules, "resenc_q")
    assert.is_false(ok)
    assert.matches("unknown rules 'resenc_q'", err, 1, true)
  end)
end)

describe("plans files", function()
  it("write then read round-trips; inherits_from resolves; nnU-Net's own plans read", function()
    local dirs = fixture_dirs()
    local lowres_dir
    for _, d in ipairs(dirs) do
      local p = planner.read(d .. "/nnUNetPlans.json")
      if p.configurations["3d_cascade_fullres"] then lowres_dir = d end
    end
    assert.is_not_nil(lowres_dir, "a fixture with a 3d_lowres stage")
    local nn = planner.read(lowres_dir .. "/nnUNetPlans.json")
    local c = planner.configuration(nn, "3d_cascade_fullres")
    assert.are.equal("3d_lowres", c.previous_stage)
    assert.are.same(nn.configurations["3d_fullres"].patch_size, c.patch_size)
    local path = tmpname(".json")
    planner.write(plan_fixture(lowres_dir, "default"), path)
    assert.are.equal(read_text(lowres_dir .. "/nnUNetPlans.json"), read_text(path))
    os.remove(path)
    nn.configurations.a = { inherits_from = "b" }
    nn.configurations.b = { inherits_from = "a" }
    assert.has_error(function() planner.configuration(nn, "a") end)
  end)

  it("plans a 100-case fingerprint in under 1 s", function()
    local dir
    for _, d in ipairs(fixture_dirs()) do
      if #json.read(d .. "/dataset_fingerprint.json").spacings >= 100 then dir = d end
    end
    assert.is_not_nil(dir, "a fixture with >= 100 cases")
    local t0 = os.clock()
    for _, pr in ipairs(PRESETS) do plan_fixture(dir, pr[1]) end
    local dt = (os.clock() - t0) / #PRESETS
    assert.is_true(dt < 1.0, string.format("planning took %.3f s", dt))
  end)
end)
