--[[ bench/predict.lua: seconds per case and peak host memory of `lunet predict` versus `nnUNetv2_predict`, same
model (a PlainConvUNet initialised by nnunetv2, one torch.save checkpoint both tools read), same case,
on the CPU, with and without mirroring. Both run as child processes under /usr/bin/time -v (peak RSS), sequential
(nnU-Net: -npp 0 -nps 0, torch 2 threads; Lunet: -np 2). Appends a line to bench/RESULTS.md.

  . scripts/env.sh && lua5.4 bench/predict.lua [--shape Z,Y,X] [--patch Z,Y,X] [--no-record]
]]
local lunet = require "lunet"
local paths = require "lunet.util.paths"
local image = require "lunet.io.image"

local shape, patch, record = { 40, 96, 96 }, { 32, 64, 64 }, true
local i = 1
while i <= #arg do
  if arg[i] == "--shape" then
    shape = {}
    for v in arg[i + 1]:gmatch("%d+") do shape[#shape + 1] = tonumber(v) end
    i = i + 1
  elseif arg[i] == "--patch" then
    patch = {}
    for v in arg[i + 1]:gmatch("%d+") do patch[#patch + 1] = tonumber(v) end
    i = i + 1
  elseif arg[i] == "--no-record" then record = false end
  i = i + 1
end

local root = os.tmpname()
os.remove(root)
for _, d in ipairs({ "raw", "pre", "res_nn", "res_lu", "in" }) do paths.mkdirs(root .. "/" .. d) end

local SETUP = [==[
import json, os, sys
import numpy as np, torch, SimpleITK as sitk
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
root, shape, patch = sys.argv[1], [int(v) for v in sys.argv[2].split(",")], [int(v) for v in sys.argv[3].split(",")]
plans = json.load(open("spec/fixtures/predict/net_plans.json"))
plans["dataset_name"] = "Dataset991_LuBench"
plans["transpose_forward"], plans["transpose_backward"] = [0, 1, 2], [0, 1, 2]
c = plans["configurations"]["3d_fullres"]
c["patch_size"], c["spacing"] = patch, [1.0, 1.0, 1.0]
kw = c["architecture"]["arch_kwargs"]
kw.update({"n_stages": 4, "features_per_stage": [16, 32, 64, 128], "kernel_sizes": [[3, 3, 3]] * 4,
           "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], "n_conv_per_stage": [2, 2, 2, 2],
           "n_conv_per_stage_decoder": [2, 2, 2]})
plans["configurations"] = {"3d_fullres": c}
dj = {"channel_names": {"0": "MR"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": 1,
      "file_ending": ".nii.gz"}
torch.manual_seed(1)
arch = c["architecture"]
net = get_network_from_plans(arch["network_class_name"], kw, arch["_kw_requires_import"], 1, 3, allow_init=True,
                             deep_supervision=False)
with torch.no_grad():
    net.decoder.seg_layers[-1].weight.mul_(8.0)
for res in ("res_nn", "res_lu"):
    d = os.path.join(root, res, "Dataset991_LuBench", "nnUNetTrainer__nnUNetPlans__3d_fullres")
    os.makedirs(os.path.join(d, "fold_0"), exist_ok=True)
    json.dump(plans, open(os.path.join(d, "plans.json"), "w"), indent=4)
    json.dump(dj, open(os.path.join(d, "dataset.json"), "w"), indent=4)
    ck = os.path.join(d, "fold_0", "checkpoint_final.pth")
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"configuration": "3d_fullres"}, "inference_allowed_mirroring_axes": (0, 1, 2)}, ck)
Z, Y, X = shape
zz, yy, xx = np.meshgrid(np.arange(Z), np.arange(Y), np.arange(X), indexing="ij")
img = (100 + 80 * np.sin(zz / 5.0) * np.cos(yy / 9.0) + 40 * np.cos(xx / 7.0)
       + np.random.RandomState(0).normal(0, 5, (Z, Y, X))).astype(np.float32)
im = sitk.GetImageFromArray(img)
im.SetSpacing((1.0, 1.0, 1.0))
sitk.WriteImage(im, os.path.join(root, "in", "b1_0000.nii.gz"))
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
local ok, out = sh(string.format("python3 %s/setup.py %s %s %s", root, root, table.concat(shape, ","),
  table.concat(patch, ",")))
if not ok then error("setup failed:\n" .. out) end

local function timed(cmd, tag)
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
for _, mirror in ipairs({ true, false }) do
  local tag = mirror and "mirror" or "nomirror"
  local nn_cmd = string.format("env %s nnUNet_results=%s/res_nn OMP_NUM_THREADS=2 nnUNetv2_predict -i %s/in "
    .. "-o %s/out_nn_%s -d 991 -c 3d_fullres -f 0 -device cpu -npp 0 -nps 0 %s", env, root, root, root, tag,
    mirror and "" or "--disable_tta")
  local lu_cmd = string.format("env %s nnUNet_results=%s/res_lu scripts/lunet predict -i %s/in -o %s/out_lu_%s "
    .. "-d 991 -c 3d_fullres -f 0 -np 2 %s", env, root, root, root, tag, mirror and "" or "--disable-tta")
  -- warm the Lunet program cache once so kernel compilation is not timed (it is cached on disk per device)
  if mirror then sh(lu_cmd) end
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
local line = string.format("- predict.lua: 3d_fullres PlainConvUNet 4 stages 16..128, patch %s, case %s, 1 fold, CPU, "
  .. "sequential: %s [%s, %s]\n", table.concat(patch, "x"), table.concat(shape, "x"), table.concat(results, "; "), dev,
  os.date("!%Y-%m-%d"))
io.write(line)
if record then
  local r = io.open("bench/RESULTS.md", "a")
  r:write(line)
  r:close()
end
os.execute("rm -rf " .. root)
