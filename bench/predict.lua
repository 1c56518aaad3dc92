--[[ bench/predict.lua: seconds per case and peak host memory of `lunet predict` versus `nnUNetv2_predict`, same
model (a PlainConvUNet initialised by nnunetv2, one torch.save checkpoint both tools read), same case,
on the CPU, with and without mirroring. Both run as child processes under /usr/bin/time -v (peak RSS), sequential
(nnU-Net: -npp 0 -nps 0, torch 2 threads; Lunet: -np 2). Appends a line to bench/RESULTS.md.

  . scripts/env.sh && lua5.4 bench/predict.lua [--shape Z,Y,X] [--patch Z,Y,X] [--no-record]
  . scripts/env.sh && lua5.4 bench/predict.lua --plan ct3d|ct2d|mri3d [--shape Z,Y,X] [--spacing Z,Y,X] [--mirror-only]
                                                 [--no-record]

  . scripts/env.sh && lua5.4 bench/predict.lua --gpu [--plan ...]   (on a GPU machine: scripts/device-check.sh)

--gpu: nnUNetv2_predict runs with -device cuda (its predictor autocasts there) and Lunet on its default device
(LUNET_DEVICE=gpu: mixed precision, the windows summed on the device); wall time only where GNU time is missing.
Where SimpleITK is missing (the GPU image; scripts/device-stubs stands in for its import), the case is written
with nibabel and both tools read it through nnU-Net's NibabelIO (dataset.json overwrite_image_reader_writer).
--plan takes a real nnU-Net default plan (nnunetv2's own ExperimentPlanner output, committed as planner fixtures by
scripts/fixtures/make_plan_fixtures.py) and builds the full-size network at its planned patch size:
  ct3d  abdominal CT (spec/fixtures/plans/abdomen_ct_lowres, median 141x510x522 at 1.43x0.8x0.8 mm): 3d_fullres,
        6 stages 32..320, patch 56x192x224, 3 classes
  ct2d  the same dataset's 2d plan: 8 stages 32..512, patch 512x512 (batch 12 in training)
  mri3d brain MRI at 1 mm (spec/fixtures/plans/brain_mr_100, 4 channels, 4 classes): 3d_fullres 6 stages 32..320,
        patch 128^3
The case is synthetic (CT-like HU or MR-like intensities), written at --spacing (default: the plan's spacing, so
the export resamples nothing; give a coarser z to time the resampling of the class maps too).
]]
local lunet = require "lunet"
io.stdout:setvbuf("line") -- (as bench/train_step.lua)
local paths = require "lunet.util.paths"
local image = require "lunet.io.image"

local PLANS = {
  ct3d = { dir = "spec/fixtures/plans/abdomen_ct_lowres", cfg = "3d_fullres", shape = { 56, 192, 224 } },
  ct2d = { dir = "spec/fixtures/plans/abdomen_ct_lowres", cfg = "2d", shape = { 16, 512, 512 } },
  mri3d = { dir = "spec/fixtures/plans/brain_mr_100", cfg = "3d_fullres", shape = { 128, 128, 128 } },
}
local shape, patch, record, plan, spacing, keep, mirror_only = nil, nil, true, nil, nil, false, false
local gpu = false
local function ints(s)
  local t = {}
  for v in s:gmatch("[%d%.]+") do t[#t + 1] = tonumber(v) end
  return t
end
local i = 1
while i <= #arg do
  if arg[i] == "--plan" then
    plan = assert(PLANS[arg[i + 1]], "--plan: one of ct3d, ct2d, mri3d")
    plan.name = arg[i + 1]
    i = i + 1
  elseif arg[i] == "--spacing" then
    spacing = ints(arg[i + 1])
    i = i + 1
  elseif arg[i] == "--shape" then
    shape = {}
    for v in arg[i + 1]:gmatch("%d+") do shape[#shape + 1] = tonumber(v) end
    i = i + 1
  elseif arg[i] == "--patch" then
    patch = {}
    for v in arg[i + 1]:gmatch("%d+") do patch[#patch + 1] = tonumber(v) end
    i = i + 1
  elseif arg[i] == "--keep" then keep = true -- leave the case, models and outputs (printed) for profiling
  elseif arg[i] == "--mirror-only" then mirror_only = true -- full-size cases: the no-mirror runs skipped
  elseif arg[i] == "--gpu" then gpu = true
  elseif arg[i] == "--no-record" then record = false end
  i = i + 1
end
shape = shape or (plan and plan.shape) or { 40, 96, 96 }
patch = patch or { 32, 64, 64 }
local cfg = plan and plan.cfg or "3d_fullres"

local root = os.tmpname()
os.remove(root)
for _, d in ipairs({ "raw", "pre", "res_nn", "res_lu", "in" }) do paths.mkdirs(root .. "/" .. d) end

local SETUP = [==[
import json, os, sys
import numpy as np, torch
try:
    import SimpleITK as sitk
    sitk.GetImageFromArray
except ImportError:  # the GPU image: written with nibabel, read through nnU-Net's NibabelIO by both tools
    sitk = None
    import nibabel
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
root, shape, patch = sys.argv[1], [int(v) for v in sys.argv[2].split(",")], [int(v) for v in sys.argv[3].split(",")]
plan_dir, cfg = sys.argv[4], sys.argv[5]
spacing = [float(v) for v in sys.argv[6].split(",")] if len(sys.argv) > 6 else None
if plan_dir == "-":
    plans = json.load(open("spec/fixtures/predict/net_plans.json"))
    plans["transpose_forward"], plans["transpose_backward"] = [0, 1, 2], [0, 1, 2]
    c = plans["configurations"]["3d_fullres"]
    c["patch_size"], c["spacing"] = patch, [1.0, 1.0, 1.0]
    kw = c["architecture"]["arch_kwargs"]
    kw.update({"n_stages": 4, "features_per_stage": [16, 32, 64, 128], "kernel_sizes": [[3, 3, 3]] * 4,
               "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2, 2, 2, 2],
               "n_conv_per_stage_decoder": [2, 2, 2]})
    dj = {"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 1,
          "file_ending": ".nii.gz"}
    spacing = spacing or [1.0, 1.0, 1.0]
else:
    # a real default plan from nnunetv2's planner, untouched: full network, planned patch and spacing
    plans = json.load(open(os.path.join(plan_dir, "nnUNetPlans.json")))
    dj = json.load(open(os.path.join(plan_dir, "dataset.json")))
    c = plans["configurations"][cfg]
    kw = c["architecture"]["arch_kwargs"]
    if spacing is None:
        spacing = list(c["spacing"]) if len(c["spacing"]) == 3 else [plans["original_median_spacing_after_transp"][0]] + list(c["spacing"])
plans["dataset_name"] = "Dataset991_LuBench"
plans["configurations"] = {cfg: c}
nch, ncls = len(dj["channel_names"]), len(dj["labels"])
if sitk is None:  # (the predictor takes its reader from the plans)
    dj["overwrite_image_reader_writer"] = plans["image_reader_writer"] = "NibabelIO"
ct = "CT" in dj["channel_names"].values()
torch.manual_seed(1)
arch = c["architecture"]
net = get_network_from_plans(arch["network_class_name"], kw, arch["_kw_requires_import"], nch, ncls, allow_init=True,
                             deep_supervision=False)
with torch.no_grad():
    net.decoder.seg_layers[-1].weight.mul_(8.0)
for res in ("res_nn", "res_lu"):
    d = os.path.join(root, res, "Dataset991_LuBench", "nnUNetTrainer__nnUNetPlans__" + cfg)
    os.makedirs(os.path.join(d, "fold_0"), exist_ok=True)
    json.dump(plans, open(os.path.join(d, "plans.json"), "w"), indent=4)
    json.dump(dj, open(os.path.join(d, "dataset.json"), "w"), indent=4)
    ck = os.path.join(d, "fold_0", "checkpoint_final.pth")
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": cfg},
                "inference_allowed_mirroring_axes": (0, 1) if cfg == "2d" else (0, 1, 2)}, ck)
Z, Y, X = shape
zz, yy, xx = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
rs = np.random.RandomState(0)
for ch in range(nch):
    base = (np.sin(zz / 5.0 + ch) * np.cos(yy / 9.0) + 0.5 * np.cos(xx / 7.0)).astype(np.float32)
    if ct:  # HU-like: air around a soft-tissue body (CTNormalization clips to the plan's foreground percentiles)
        body = ((yy - Y / 2) ** 2 / (0.42 * Y) ** 2 + (xx - X / 2) ** 2 / (0.45 * X) ** 2) < 1
        img = np.where(body, 40 + 120 * base, -1000) + rs.normal(0, 10, (Z, Y, X))
    else:
        img = 100 + 80 * base + rs.normal(0, 5, (Z, Y, X))
    path = os.path.join(root, "in", "b1_%04d.nii.gz" % ch)
    if sitk is not None:
        im = sitk.GetImageFromArray(img.astype(np.float32))
        im.SetSpacing(tuple(float(v) for v in spacing[::-1]))
        sitk.WriteImage(im, path)
    else:  # NibabelIO's array is the file's (x, y, z) transposed: store (X, Y, Z) so that it reads back (Z, Y, X)
        nibabel.save(nibabel.Nifti1Image(img.astype(np.float32).transpose(2, 1, 0), np.diag(list(spacing[::-1]) + [1.0])),
                     path)
]==]

local function sh(cmd)
  local p = io.popen(cmd .. " 2>&1")
  local out = p:read("a")
  local ok = p:close()
  return ok, out
end

local f = io.open(root .. "/setup.py", "w")
f:write(SETUP)
f:close()
local ok, out = sh(string.format("python3 %s/setup.py %s %s %s %s %s %s", root, root, table.concat(shape, ","),
  table.concat(patch, ","), plan and plan.dir or "-", cfg, spacing and table.concat(spacing, ",") or ""))
if not ok then error("setup failed:\n" .. out) end

local gnu_time = io.open("/usr/bin/time") ~= nil
local function timed(cmd, tag)
  if not gnu_time then -- wall time only
    local t0 = require("lunet.util.clock").now()
    local ok2, o = sh(cmd)
    if not ok2 then error(tag .. " failed:\n" .. o) end
    return require("lunet.util.clock").now() - t0, 0 / 0
  end
  local tf = root .. "/time_" .. tag .. ".txt"
  local ok2, o = sh(string.format("/usr/bin/time -v -o %s %s", tf, cmd))
  if not ok2 then error(tag .. " failed:\n" .. o) end
  local t = io.open(tf):read("a")
  local wall = t:match("Elapsed %(wall clock%) time %(h:mm:ss or m:ss%): ([%d:%.]+)")
  local secs = 0
  for part in wall:gmatch("[%d%.]+") do secs = secs * 60 + tonumber(part) end
  local rss = tonumber(t:match("Maximum resident set size %(kbytes%): (%d+)")) / 1024
  return secs, rss
end

local env = string.format("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre", root, root)
local results = {}
for _, mirror in ipairs(mirror_only and { true } or { true, false }) do
  local tag = mirror and "mirror" or "nomirror"
  local nn_cmd = string.format("env %s nnUNet_results=%s/res_nn OMP_NUM_THREADS=2 nnUNetv2_predict -i %s/in "
    .. "-o %s/out_nn_%s -d 991 -c %s -f 0 -device %s -npp 0 -nps 0 %s", env, root, root, root, tag,
    cfg, gpu and "cuda" or "cpu", mirror and "" or "--disable_tta")
  local lu_cmd = string.format("env %s nnUNet_results=%s/res_lu scripts/lunet predict -i %s/in -o %s/out_lu_%s "
    .. "-d 991 -c %s -f 0 -np 2 %s", env, root, root, root, tag, cfg, mirror and "" or "--disable-tta")
  -- warm the Lunet program cache once so kernel compilation is not timed (it is cached on disk per device);
  -- without mirroring, as the kernels are the same (a quarter or an eighth of a mirrored run)
  if mirror then
    sh(string.format("env %s nnUNet_results=%s/res_lu scripts/lunet predict -i %s/in -o %s/out_lu_warm -d 991 -c %s "
      .. "-f 0 -np 2 --disable-tta", env, root, root, root, cfg))
  end
  local nt, nr = timed(nn_cmd, "nn_" .. tag)
  local lt, lr = timed(lu_cmd, "lu_" .. tag)
  local a = image.read(string.format("%s/out_nn_%s/b1.nii.gz", root, tag)).data:flat()
  local b = image.read(string.format("%s/out_lu_%s/b1.nii.gz", root, tag)).data:flat()
  local eq = 0
  for k = 1, #a do if a[k] == b[k] then eq = eq + 1 end end
  results[#results + 1] = string.format("%s: nnunetv2 %.1f s / %.0f MB, Lunet %.1f s / %.0f MB: %.2fx faster, RSS "
    .. "ratio %.2f, voxels equal %.4f", tag, nt, nr, lt, lr, nt / lt, lr / nr, eq / #a)
  print(results[#results])
end

local dev = "CPU"
local okd, devs = pcall(lunet.devices)
if okd and devs and devs[1] then dev = devs[1].name or dev end
local function load()
  local p = io.popen("uptime")
  local u = p:read("a"); p:close()
  return u:match("load average: ([%d%.]+)") or "?"
end
local what = plan and string.format("--plan %s (%s %s, real nnU-Net plan, full network and patch)", plan.name,
  plan.dir:match("[^/]+$"), cfg) or string.format("3d_fullres PlainConvUNet 4 stages 16..128, patch %s",
  table.concat(patch, "x"))
local line = string.format("- predict.lua: %s, case %s%s, 1 fold, %s, sequential: %s [%s, load %s after, %s]\n",
  what, table.concat(shape, "x"), spacing and (" at " .. table.concat(spacing, "x") .. " mm") or "",
  gpu and "GPU (nnunetv2 -device cuda, Lunet mixed precision)" or "CPU",
  table.concat(results, "; "), dev, load(), os.date("!%Y-%m-%d %H:%M"))
io.write(line)
if record then
  local r = io.open("bench/RESULTS.md", "a")
  r:write(line)
  r:close()
end
if keep then print("kept " .. root) else os.execute("rm -rf " .. root) end
