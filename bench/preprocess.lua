-- Preprocessing benchmark: Lunet vs nnunetv2 (python, pip) on the same synthetic dataset, the same plans and the
-- same number of workers; wall time ratio and peak RSS of each (GNU time -v: the largest single process, which for
-- nnU-Net's worker pool is the biggest worker or the parent). Appends a line to bench/RESULTS.md.
--   lua5.4 bench/preprocess.lua [cases=8] [np=2] [cfg=3d_fullres]
-- Needs python3 with nnunetv2 and SimpleITK (only to make the data and to run the reference).
local cases = tonumber(arg[1] or "") or 8
local np = tonumber(arg[2] or "") or 2
local cfg = arg[3] or "3d_fullres"

local root = os.tmpname()
os.remove(root)
assert(os.execute("mkdir -p " .. root .. "/raw " .. root .. "/pre_nn " .. root .. "/pre_lu " .. root .. "/res"))

local function sh(cmd)
  local ok = os.execute(cmd)
  if not ok then error("command failed: " .. cmd) end
end

local function slurp(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- 1. data: anisotropic MR-like volumes with a zero background (crop + separate-z resampling + mask norm), 3 labels
local gen = root .. "/gen.py"
local f = assert(io.open(gen, "w"))
f:write(string.format([[
import os, json, numpy as np, SimpleITK as sitk
root = %q; n = %d
d = os.path.join(root, "raw", "Dataset950_LuBench")
os.makedirs(os.path.join(d, "imagesTr")); os.makedirs(os.path.join(d, "labelsTr"))
rng = np.random.RandomState(0)
for i in range(n):
    shape = (int(rng.randint(36, 44)), int(rng.randint(170, 200)), int(rng.randint(170, 200)))
    sp = (float(rng.uniform(3.0, 4.0)), float(rng.uniform(0.7, 0.9)), float(rng.uniform(0.7, 0.9)))
    z, y, x = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    body = (z / 0.95) ** 2 + (y / 0.8) ** 2 + (x / 0.75) ** 2 < 1
    img = (rng.normal(300, 40, shape) * body).astype(np.float32)
    seg = np.zeros(shape, np.uint8)
    for l, (c, r) in enumerate([((0, -0.3, 0.2), 0.25), ((0.1, 0.3, -0.2), 0.2), ((-0.2, 0, 0), 0.15)], 1):
        m = ((z - c[0]) ** 2 + (y - c[1]) ** 2 + (x - c[2]) ** 2) < r * r
        seg[m & body] = l; img[m & body] += 100 * l
    for arr, name, dt in ((img, "imagesTr/b_%%03d_0000.nii.gz" %% i, np.float32), (seg, "labelsTr/b_%%03d.nii.gz" %% i, np.uint8)):
        im = sitk.GetImageFromArray(arr.astype(dt)); im.SetSpacing(sp[::-1]); sitk.WriteImage(im, os.path.join(d, name), True)
json.dump({"channel_names": {"0": "T2"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "numTraining": n,
           "file_ending": ".nii.gz"}, open(os.path.join(d, "dataset.json"), "w"), indent=4)
]], root, cases))
f:close()
io.stderr:write("bench: generating " .. cases .. " cases in " .. root .. "\n")
sh("python3 " .. gen)

local env_nn = string.format("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre_nn nnUNet_results=%s/res", root, root, root)
local env_lu = string.format("nnUNet_raw=%s/raw nnUNet_preprocessed=%s/pre_lu nnUNet_results=%s/res", root, root, root)

-- 2. the same plans for both: nnU-Net's fingerprint + planner, copied
io.stderr:write("bench: planning with nnunetv2\n")
sh(env_nn .. " nnUNetv2_extract_fingerprint -d 950 -np " .. np .. " >/dev/null 2>&1")
sh(env_nn .. " nnUNetv2_plan_experiment -d 950 >/dev/null 2>&1")
sh(string.format("cp -r %s/pre_nn/Dataset950_LuBench %s/pre_lu/", root, root))

local function timed(cmd, log)
  local t0 = os.clock()
  local w0 = io.popen("date +%s.%N"):read("l")
  sh(string.format("/usr/bin/time -v -o %s bash -c %q >/dev/null 2>&1", log, cmd))
  local w1 = io.popen("date +%s.%N"):read("l")
  local _ = t0
  local rss = tonumber(slurp(log):match("Maximum resident set size %(kbytes%): (%d+)"))
  return tonumber(w1) - tonumber(w0), rss
end

io.stderr:write(string.format("bench: nnUNetv2_preprocess -c %s -np %d\n", cfg, np))
local t_nn, rss_nn = timed(env_nn .. " nnUNetv2_preprocess -d 950 -c " .. cfg .. " -np " .. np, root .. "/time_nn")
local here = io.popen("pwd"):read("l")
io.stderr:write(string.format("bench: lunet preprocess -c %s -np %d\n", cfg, np))
local t_lu, rss_lu = timed(string.format(". %s/scripts/env.sh && %s lunet preprocess 950 -c %s -np %d -q", here, env_lu,
  cfg, np), root .. "/time_lu")

-- 3. sanity: one case compared (python reads nnU-Net's b2nd; Lunet's store read here)
local check = root .. "/check.py"
f = assert(io.open(check, "w"))
f:write(string.format([[
import blosc2, numpy as np, sys
a = blosc2.open(urlpath=%q, mode="r")[:]
b = np.fromfile(%q, dtype=np.float32).reshape(a.shape)
print(float(np.abs(a - b).max()))
]], root .. "/pre_nn/Dataset950_LuBench/nnUNetPlans_" .. cfg .. "/b_000.b2nd", root .. "/lu_b_000.raw"))
f:close()
package.path = here .. "/lua/?.lua;" .. here .. "/lua/?/init.lua;" .. package.path
package.cpath = here .. "/build/?.so;" .. package.cpath
local store = require "lunet.io.store"
local c = store.open(root .. "/pre_lu/Dataset950_LuBench/nnUNetPlans_" .. cfg .. "/lunet/b_000.lcs")
local d = c:read_patch({ 0, 0, 0 }, c.shape)
local out = assert(io.open(root .. "/lu_b_000.raw", "wb"))
out:write(d:bytes())
out:close()
local maxdiff = io.popen("python3 " .. check .. " 2>&1"):read("a"):gsub("%s+$", "")

local load = (io.popen("cut -d' ' -f1 /proc/loadavg"):read("l") or "?")
local cpu = (io.popen("lscpu | grep 'Model name' | sed 's/.*: *//'"):read("l") or "?"):gsub("%s+", " ")
local line = string.format("- preprocess.lua: %s, %d cases ~(40,185,185) anisotropic MR, -np %d, same plans: "
  .. "nnunetv2 %.1f s / peak RSS %d MB, Lunet %.1f s / %d MB: %.1fx faster (goal >= 3), RSS ratio %.2f (goal < 1); "
  .. "max |diff| case 0 %s; load avg %s [%s, %s]",
  cfg, cases, np, t_nn, rss_nn // 1024, t_lu, rss_lu // 1024, t_nn / t_lu, rss_lu / rss_nn, maxdiff, load, cpu,
  os.date("!%Y-%m-%d"))
print(line)
local r = io.open(here .. "/bench/RESULTS.md", "a")
if r then
  r:write(line .. "\n")
  r:close()
end
sh("rm -rf " .. root)
