-- Metrics equal nnunetv2's compute_metrics_on_folder (summary.json committed as fixtures) to 1e-6:
-- empty reference, empty prediction, both empty (NaN), ignore label, regions.
local lunet = require "lunet"
local cjson = require "cjson"
local evaluate = require "lunet.evaluate"

local FIX = "spec/fixtures/eval/"
local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function golden(p)
  -- cjson refuses NaN by default: decode with it enabled
  cjson.decode_invalid_numbers(true)
  return cjson.decode(slurp(p))
end

local function close(a, b, what)
  if a ~= a or b ~= b then
    assert(a ~= a and b ~= b, what .. ": expected " .. tostring(b) .. " got " .. tostring(a))
    return
  end
  assert(math.abs(a - b) <= 1e-6 * math.max(1, math.abs(b)), what .. ": expected " .. tostring(b) .. " got " .. tostring(a))
end

local function compare(got, want, from_file)
  assert.are.equal(#want.metric_per_case, #got.metric_per_case)
  for i, wc in ipairs(want.metric_per_case) do
    local gc = got.metric_per_case[i]
    assert.are.equal(wc.reference_file, gc.reference_file)
    assert.are.equal(wc.prediction_file, gc.prediction_file)
    for key, wm in pairs(wc.metrics) do
      for m, v in pairs(wm) do close(gc.metrics[key][m], v, wc.prediction_file .. " " .. key .. " " .. m) end
      if not from_file then
        for _, m in ipairs({ "TP", "FP", "FN", "TN", "n_pred", "n_ref" }) do
          assert.are.equal("integer", math.type(gc.metrics[key][m]))
        end
      end
    end
  end
  for key, wm in pairs(want.mean) do
    for m, v in pairs(wm) do close(got.mean[key][m], v, "mean " .. key .. " " .. m) end
  end
  for m, v in pairs(want.foreground_mean) do close(got.foreground_mean[m], v, "foreground_mean " .. m) end
end

local function npy_twin(path) return lunet.core.npz.read_npy((path:gsub("%.nii%.gz$", ".npy"))) end

local function tmpjson() local p = os.tmpname(); os.remove(p); return p .. ".json" end

describe("evaluate", function()
  for _, set in ipairs({ "labels", "regions" }) do
    local d = FIX .. set .. "/"
    local want = golden(d .. "summary.json")
    it(set .. ": folder metrics equal nnunetv2 (NIfTI reader)", function()
      local out = tmpjson()
      local got = evaluate.folder(d .. "ref", d .. "pred", { dataset_json = d .. "dataset.json", output_file = out })
      compare(got, want)
      -- the written file decodes to the same numbers and has nnU-Net's layout (keys sorted, NaN literal)
      local text = slurp(out)
      os.remove(out)
      cjson.decode_invalid_numbers(true)
      compare(cjson.decode(text), want, true)
      -- integers stay integers in the file (no "42.0" for counts)
      local back = require("lunet.util.json").decode(text)
      for _, c in ipairs(back.metric_per_case) do
        for _, m in pairs(c.metrics) do assert.are.equal("integer", math.type(m.TP)) end
      end
      assert.are.equal((slurp(d .. "summary.json"):gsub("[%d%.e%-]+", "#")), (text:gsub("[%d%.e%-]+", "#")))
    end)
    it(set .. ": same through the .npy twins (reader hook)", function()
      local got = evaluate.folder(d .. "ref", d .. "pred", { dataset_json = d .. "dataset.json", output_file = false,
        read = npy_twin, threads = 1 })
      compare(got, want)
    end)
  end

  it("gives NaN for empty reference and prediction, 0 for an empty reference with a prediction", function()
    local z = lunet.tensor({ 0, 0, 0, 0 }, { shape = { 1, 1, 2, 2 }, dtype = "u8" })
    local p = lunet.tensor({ 0, 1, 0, 0 }, { shape = { 1, 1, 2, 2 }, dtype = "u8" })
    local m = evaluate.case(z, z, { 1 })["1"]
    assert.is_true(m.Dice ~= m.Dice and m.IoU ~= m.IoU)
    m = evaluate.case(z, p, { 1 })["1"]
    assert.are.equal(0.0, m.Dice)
    assert.are.equal(1, m.FP)
    -- float label images compare as numbers; 1.5 is no label
    local f = lunet.tensor({ 1.0, 1.5, 2.0, 0.0 }, { shape = { 1, 1, 2, 2 }, dtype = "f32" })
    local i = lunet.tensor({ 1, 1, 2, 0 }, { shape = { 1, 1, 2, 2 }, dtype = "i16" })
    m = evaluate.case(f, i, { 1, { 1, 2 } })
    assert.are.same({ 1, 1, 0, 2 }, { m["1"].TP, m["1"].FP, m["1"].FN, m["1"].TN })
    assert.are.equal(2, m["(1, 2)"].TP)
  end)

  it("region keys are Python's str() of the label or tuple", function()
    assert.are.equal("3", evaluate.region_key(3))
    assert.are.equal("(1, 2, 3)", evaluate.region_key({ 1, 2, 3 }))
    assert.are.equal("(3,)", evaluate.region_key({ 3 }))
    assert.are.same({ 2, 3 }, evaluate.key_to_region("(2, 3)"))
  end)

  it("requires a prediction for every reference unless chill", function()
    local d = FIX .. "labels/"
    local ok, err = pcall(evaluate.folder, d .. "ref", FIX .. "regions/pred", { dataset_json = d .. "dataset.json",
      output_file = false })
    assert.is_false(ok)
    assert.matches("has no prediction", err, 1, true)
  end)

  it("CLI writes the summary", function()
    local d = FIX .. "labels/"
    local out = tmpjson()
    local code = require("lunet.cli").main({ "evaluate", d .. "ref", d .. "pred", "-djfile", d .. "dataset.json", "-o", out })
    assert.are.equal(0, code)
    cjson.decode_invalid_numbers(true)
    compare(cjson.decode(slurp(out)), golden(d .. "summary.json"), true)
    os.remove(out)
  end)
end)
