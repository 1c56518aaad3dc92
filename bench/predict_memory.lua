--[[ bench/predict_memory.lua: host memory of predicting and exporting one large CT, streaming versus the
whole-volume path (a 512x512x600 CT with 14 classes).

The case is synthetic but full-sized: a (600, 512, 512) volume at spacing (1.0, 0.8, 0.8) whose labels are
40-voxel blocks in-plane and 30-slice bands (values -(label + 0.5)), preprocessed to (1.25, 0.9, 0.9) with nnU-Net's
cubic resampling, predicted with 128^3 windows (step 0.5, no mirroring) by a model that costs no convolutions:
its 15 logits are the input itself (class 0) and one indicator per label value 0..13 (classes 1..14), so the
segmentation should be label + 1. Export resamples the 15 classes back linearly. Each path runs in its own
process; reported: seconds, the peak of host tensor bytes between preprocessing and the written segmentation,
the process's peak RSS, and both against one float32 class volume at full resolution.

  . scripts/env.sh && lua5.4 bench/predict_memory.lua [--shape Z,Y,X] [--patch Z,Y,X] [--mode both|stream|whole]
      [--no-record]
]]
local lunet = require "lunet"
local json = require "lunet.util.json"
local core = lunet.core

local shape, patch, mode, record, child = { 600, 512, 512 }, { 128, 128, 128 }, "both", true, false
local i = 1
while i <= #arg do
  local a = arg[i]
  local function list()
    local t = {}
    for v in arg[i + 1]:gmatch("%d+") do t[#t + 1] = tonumber(v) end
    i = i + 1
    return t
  end
  if a == "--shape" then shape = list()
  elseif a == "--patch" then patch = list()
  elseif a == "--mode" then mode = arg[i + 1]; i = i + 1
  elseif a == "--child" then child = true
  elseif a == "--no-record" then record = false
  else error("unknown argument " .. a) end
  i = i + 1
end
local NLAB = 14 -- label values 0..13; classes: 0 = the input, 1..14 = label + 1

local function rss_kb(field)
  for line in io.lines("/proc/self/status") do
    local v = line:match("^" .. field .. ":%s+(%d+)")
    if v then return tonumber(v) end
  end
end

local function label_at(z, y, x) return (z // 30 + y // 40 + x // 40) % NLAB end

--- The image (1, Z, Y, X) f32 built from one int16 slice string per band shift.
local function make_image()
  local Z, Y, X = shape[1], shape[2], shape[3]
  local slices = {}
  for shift = 0, NLAB - 1 do
    local v = {}
    for y = 0, Y - 1 do
      for x = 0, X - 1 do v[#v + 1] = string.pack("<i2", -2 * ((shift + y // 40 + x // 40) % NLAB) - 1) end
    end
    slices[shift] = table.concat(v)
  end
  local parts = {}
  for z = 0, Z - 1 do parts[z + 1] = slices[(z // 30) % NLAB] end
  local t16 = core.from_bytes(table.concat(parts), { 1, Z, Y, X }, "i16")
  local t = t16:astype("f32")
  t16:free()
  core.infer.scale_(t, 0.5, false) -- -(label + 0.5): truncation to int16 in the model gives -label back
  return t
end

local function plans_and_dataset()
  local plans = json.read("spec/fixtures/predict/plans.json")
  plans.transpose_forward, plans.transpose_backward = { 0, 1, 2 }, { 0, 1, 2 }
  local c = plans.configurations["3d_fullres"]
  c.spacing, c.patch_size, c.normalization_schemes = { 1.25, 0.9, 0.9 }, patch, { "NoNormalization" }
  local dj = json.read("spec/fixtures/predict/dataset.json")
  dj.labels = { background = 0 }
  for l = 1, NLAB do dj.labels["c" .. l] = l end
  return plans, dj
end

local labels = {}
for l = 0, NLAB - 1 do labels[#labels + 1] = -l end
local model = { forward = function(x)
  local s = x.shape
  local d = x:reshape({ 1, s[3], s[4], s[5] })
  local seg = d:astype("i16")
  local o = core.infer.onehot_append(d, seg, labels)
  d:free()
  seg:free()
  local out = o:reshape({ 1, NLAB + 1, s[3], s[4], s[5] })
  o:free()
  return out
end }

if child then
  local predict = require "lunet.predict"
  local plans, dj = plans_and_dataset()
  local t0 = core.now()
  local img = make_image()
  local t1 = core.now()
  local data, p = predict.preprocessed(img, { spacing = { 1.0, 0.8, 0.8 } }, { plans = plans,
    configuration = "3d_fullres", dataset_json = dj })
  img:free()
  collectgarbage()
  local t2 = core.now()
  local info = require("lunet.labels").info(dj.labels)
  local settings = { patch = patch, threads = 2 }
  local rss_before = rss_kb("VmRSS")
  local live0 = core.host_memory(true).live
  local seg
  if mode == "stream" then
    seg = predict.stream({ model }, data, p, plans, "3d_fullres", info, settings)
  else
    local lg = predict.sliding_window({ model }, data, settings)
    seg = predict.export(lg, p, plans, "3d_fullres", info, {})
    lg:free()
  end
  local t3 = core.now()
  local peak = core.host_memory().peak - live0
  -- agreement with label + 1 on a lattice of voxels (resampling moves block edges by under a voxel)
  local bytes = seg:bytes()
  local Z, Y, X = shape[1], shape[2], shape[3]
  local n, eq = 0, 0
  for z = 3, Z - 1, 7 do
    for y = 5, Y - 1, 11 do
      for x = 2, X - 1, 13 do
        n = n + 1
        if bytes:byte((z * Y + y) * X + x + 1) == label_at(z, y, x) + 1 then eq = eq + 1 end
      end
    end
  end
  local fh = io.open(os.getenv("LUNET_BENCH_SEG"), "wb")
  fh:write(bytes)
  fh:close()
  print("RESULT " .. json.encode({ mode = mode, make_s = t1 - t0, preprocess_s = t2 - t1, predict_export_s = t3 - t2,
    tensor_peak = peak, rss_before_kb = rss_before, hwm_kb = rss_kb("VmHWM"), data_shape = data.shape,
    agreement = eq / n }))
  os.exit(0)
end

local function run(m)
  local segf = os.tmpname()
  local cmd = string.format("LUNET_BENCH_SEG=%s %s %s --child --mode %s --shape %s --patch %s", segf, arg[-1], arg[0],
    m, table.concat(shape, ","), table.concat(patch, ","))
  local h = io.popen(cmd)
  local out = h:read("a")
  h:close()
  local r = out:match("RESULT (%b{})")
  if not r then error("child " .. m .. " failed:\n" .. out) end
  r = json.decode(r)
  r.seg_file = segf
  return r
end

local modes = mode == "both" and { "stream", "whole" } or { mode }
local res = {}
local class_bytes = 4 * shape[1] * shape[2] * shape[3]
local MB = 1024 * 1024
print(string.format("case %s, patch %s, %d classes; one f32 class volume at full resolution: %.0f MB",
  table.concat(shape, "x"), table.concat(patch, "x"), NLAB + 1, class_bytes / MB))
for _, m in ipairs(modes) do
  local r = run(m)
  res[m] = r
  print(string.format("%-6s preprocessed %s: predict+export %.1f s; host tensors beyond the input: peak %.0f MB "
    .. "(%.2f class volumes); process peak RSS %.0f MB (%.0f MB before predicting); agreement with label+1 %.4f",
    m, table.concat(r.data_shape, "x"), r.predict_export_s, r.tensor_peak / MB, r.tensor_peak / class_bytes,
    r.hwm_kb / 1024, r.rss_before_kb / 1024, r.agreement))
end
local same
if res.stream and res.whole then
  local a = io.open(res.stream.seg_file, "rb"):read("a")
  local b = io.open(res.whole.seg_file, "rb"):read("a")
  same = a == b
  print("segmentations identical: " .. tostring(same))
end
for _, r in pairs(res) do os.remove(r.seg_file) end
if record and res.stream and res.whole then
  local s, w = res.stream, res.whole
  local fh = io.open("bench/RESULTS.md", "a")
  fh:write(string.format("\n- predict_memory.lua %s (%s), %d classes, patch %s, no mirroring: streaming %.0f s, "
    .. "tensor peak %.0f MB (%.2f f32 class volumes), peak RSS %.0f MB; whole volume %.0f s, %.0f MB (%.2f), "
    .. "RSS %.0f MB; identical segmentations: %s; agreement with the known labels %.4f\n", table.concat(shape, "x"),
    os.date("!%Y-%m-%d"), NLAB + 1, table.concat(patch, "x"), s.predict_export_s, s.tensor_peak / MB,
    s.tensor_peak / class_bytes, s.hwm_kb / 1024, w.predict_export_s, w.tensor_peak / MB, w.tensor_peak / class_bytes,
    w.hwm_kb / 1024, tostring(same), s.agreement))
  fh:close()
end
