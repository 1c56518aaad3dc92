-- Fault injection (`make faults`, scripts/faults.sh): kill -9 `lunet preprocess`, `lunet train` and `lunet predict`
-- at random points on the demo data (lunet.demo: 2-D slices of the Colin27 brain mask), resume each, and compare the
-- result with an uninterrupted run. Prints one line per kill and a tally; exits 1 when any resume differed.
--   FAULTS_KILLS   kills per stage (default 20)
--   FAULTS_STAGES  stages to run (default "preprocess train predict")
--   FAULTS_DIR     work folder (default a new folder under /tmp; removed at the end unless FAULTS_KEEP=1)
--   FAULTS_SEED    seed of the kill times (default: the time)
-- Kill times: uniform over [0, 0.9 x] the warm reference run's duration (a resumed child pays process start and
-- device setup again, so later points still fall inside the run).
-- Comparisons: preprocess: every <case>.lcs / .json / .provenance.json record's payload and gt_segmentations file
-- byte-equal to the reference; train (--continue after the kill): the per-epoch train losses of checkpoint_final
-- within 1e-5 (relative) and the pseudo Dice within 1e-3 of the reference (the trainer spec's tolerance: PoCL's
-- reductions are not bit-exact across runs), the final validation's mean Dice within 1e-3; predict (rerun): every
-- output byte-equal. After every kill, files the killed process left behind (temporary names, stray files) and its
-- surviving child processes are counted; after the resume, the leftovers that remain are failures.
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local ROOT = here .. "/.."
package.path = ROOT .. "/lua/?.lua;" .. ROOT .. "/lua/?/init.lua;" .. package.path
package.cpath = ROOT .. "/build/?.so;" .. package.cpath
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local clock = require "lunet.util.clock"
local demo = require "lunet.demo"

local KILLS = tonumber(os.getenv("FAULTS_KILLS") or "") or 20
local STAGES = os.getenv("FAULTS_STAGES") or "preprocess train predict"
local SEED = tonumber(os.getenv("FAULTS_SEED") or "") or os.time()
local DIR = os.getenv("FAULTS_DIR")
if not DIR or DIR == "" then
  DIR = os.tmpname()
  os.remove(DIR)
end
math.randomseed(SEED)

local function q(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function sh(cmd) return os.execute(cmd) end
local function readfile(p)
  local f = io.open(p, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end
local LUNET = q(paths.join(ROOT, "scripts/lunet"))
local DS = demo.dataset_name
local RAW = DIR .. "/raw"
local TRAINER = DIR .. "/faults_trainer.lua"
local TRAIN_ARGS = DS .. " 2d 0 -p TinyPlans -tr " .. TRAINER .. " --epochs 3 --iters 4 --val-iters 1 --seed 3 -np 1 -q"
local function env(root)
  return ("nnUNet_raw=%s nnUNet_preprocessed=%s/pre nnUNet_results=%s/res "):format(q(RAW), q(root), q(root))
end
local function lunet(root, args, log)
  return sh(env(root) .. LUNET .. " " .. args .. " > " .. q(log) .. " 2>&1")
end

-- every file below dir (relative names), sorted
local function files(dir)
  local out = {}
  local p = io.popen("cd " .. q(dir) .. " 2>/dev/null && find . -type f | sort")
  for l in p:lines() do out[#out + 1] = l:sub(3) end
  p:close()
  return out
end

-- Starts cmd in its own session (setsid) under a shell that waits for it (and so reaps it, as a user's shell
-- would: where PID 1 does not reap, an orphan stays a zombie and looks alive). Returns the pid, which is also the
-- session id of its children, and the shell's handle.
local function spawn(root, args, log)
  local p = io.popen(env(root) .. "setsid " .. LUNET .. " " .. args .. " > " .. q(log) .. " 2>&1 & echo $!; wait")
  local pid = p:read("l")
  return assert(math.tointeger(tonumber(pid)), "no pid"), p
end
local function state(pid)
  local f = io.open("/proc/" .. pid .. "/stat")
  if not f then return nil end
  local l = f:read("l") or ""
  f:close()
  return l:match("%) (%a)")
end
local function alive(pid) local s = state(pid); return s ~= nil and s ~= "Z" end
-- live (not zombie) processes of session sid other than sid itself
local function session_pids(sid)
  local out = {}
  local p = io.popen("ps -eo pid=,sid=,stat= 2>/dev/null")
  for l in p:lines() do
    local a, b, st = l:match("(%d+)%s+(%d+)%s+(%S+)")
    if tonumber(b) == sid and tonumber(a) ~= sid and not st:find("Z") then out[#out + 1] = math.tointeger(tonumber(a)) end
  end
  p:close()
  return out
end

-- Kills pid with SIGKILL after `delay` seconds (if it is still running), then waits for the shell. Returns killed
-- (bool), survivors (child pids still running 0.5 s after the kill; they are then killed too, by pid).
local function kill_after(pid, shell, delay)
  local t0 = clock.now()
  while clock.now() - t0 < delay do
    if not alive(pid) then break end
    sh("sleep 0.05")
  end
  local killed = alive(pid)
  local left = {}
  if killed then
    sh("kill -9 " .. pid .. " 2>/dev/null")
    sh("sleep 0.5")
    left = session_pids(pid)
    for _, c in ipairs(left) do sh("kill -9 " .. c .. " 2>/dev/null") end
  end
  shell:close()
  return killed, left
end

-- Temporary or partial names writers use: "x.tmp123.456", "x.tmp-AbC123", ".x.partial", "*.partial"
-- and the scratch folders of prediction's preprocessing workers (".lunet-preprocess-<pid>-<host>/")
local function is_temp(name)
  local b = name:match("([^/]*)$")
  return b:find("%.tmp") ~= nil or b:find("partial") ~= nil or name:find("^%.lunet%-") ~= nil
    or name:find("/%.lunet%-") ~= nil
end

local tally = {}
local function record(stage, outcome)
  tally[stage] = tally[stage] or { kills = 0, finished_first = 0, equal = 0, differ = 0, left_after_kill = 0,
    left_after_resume = 0, orphans = 0, resume_failed = 0 }
  local t = tally[stage]
  for k, v in pairs(outcome) do t[k] = t[k] + v end
end

local problems = {}
local function problem(stage, i, msg)
  problems[#problems + 1] = ("%s kill %d: %s"):format(stage, i, msg)
  print("  PROBLEM: " .. msg)
end

-- ------------------------------------------------------------------------------------------------ reference
print(("lunet faults: %d kills per stage (%s), seed %d, work folder %s"):format(KILLS, STAGES, SEED, DIR))
sh("mkdir -p " .. q(RAW) .. " " .. q(DIR .. "/ref"))
demo.make_dataset(RAW)
local f = assert(io.open(TRAINER, "w"))
f:write('return { name = "faults_trainer", save_every = 1 }\n')
f:close()

local REF = DIR .. "/ref"
local t0 = clock.now()
assert(lunet(REF, "plan_and_preprocess -d " .. DS .. " -c 2d -q", DIR .. "/ref_pp.log"), "reference preprocessing failed")
-- the kill times are drawn over the length of a warm run (OpenCL kernels compiled and cached, files in the page
-- cache): each reference command runs twice and the second is timed
t0 = clock.now()
assert(lunet(REF, "preprocess " .. DS .. " -c 2d --clean -q", DIR .. "/ref_pp.log"), "reference preprocessing failed")
local T_PP = clock.now() - t0
local PRE_DS = REF .. "/pre/" .. DS
-- TinyPlans: the same plans and preprocessed folder, a U-Net of 4..16 features (as the trainer spec)
local plans = json.read(PRE_DS .. "/nnUNetPlans.json")
plans.plans_name = "TinyPlans"
local kw = plans.configurations["2d"].architecture.arch_kwargs
local feats = json.array {}
for s = 1, kw.n_stages do feats[s] = math.min(16, 4 << (s - 1)) end
kw.features_per_stage = feats
json.write(PRE_DS .. "/TinyPlans.json", plans)
local CFG_DIR = "nnUNetPlans_2d"

local FOLD = "res/" .. DS .. "/faults_trainer__TinyPlans__2d/fold_0"
assert(lunet(REF, "train " .. TRAIN_ARGS, DIR .. "/ref_train.log"), "reference training failed: " .. DIR .. "/ref_train.log")
t0 = clock.now()
assert(lunet(REF, "train " .. TRAIN_ARGS, DIR .. "/ref_train.log"), "reference training failed: " .. DIR .. "/ref_train.log")
local T_TR = clock.now() - t0
local PRED_ARGS = ("predict -i %s -o %%s -d %s -c 2d -f 0 -p TinyPlans -tr faults_trainer -np 1"):format(
  q(RAW .. "/" .. DS .. "/imagesTs"), DS)
assert(lunet(REF, PRED_ARGS:format(q(REF .. "/pred")), DIR .. "/ref_pred.log"), "reference prediction failed")
t0 = clock.now()
assert(lunet(REF, PRED_ARGS:format(q(REF .. "/pred")), DIR .. "/ref_pred.log"), "reference prediction failed")
local T_PR = clock.now() - t0
print(("reference run: preprocess %.1f s, train %.1f s, predict %.1f s"):format(T_PP, T_TR, T_PR))

local function logging_of(ckpt)
  local net = require "lunet.net"
  return net.read_header(ckpt).meta.logging
end

-- ------------------------------------------------------------------------------------------------ stages
local RUN = DIR .. "/run"
local function fresh_run_root()
  sh("rm -rf " .. q(RUN) .. " && mkdir -p " .. q(RUN .. "/pre/" .. DS) .. " " .. q(RUN .. "/res"))
  for _, n in ipairs({ "nnUNetPlans.json", "TinyPlans.json", "dataset.json", "dataset_fingerprint.json",
    "splits_final.json" }) do
    if paths.isfile(PRE_DS .. "/" .. n) then sh("cp " .. q(PRE_DS .. "/" .. n) .. " " .. q(RUN .. "/pre/" .. DS .. "/")) end
  end
end

local function temps(dir)
  local out = {}
  for _, n in ipairs(files(dir)) do if is_temp(n) then out[#out + 1] = n end end
  return out
end

local function stage_preprocess(i)
  fresh_run_root()
  local pid, shell = spawn(RUN, "preprocess " .. DS .. " -c 2d -q", DIR .. "/k.log")
  local killed, orphans = kill_after(pid, shell, math.random() * T_PP * 0.9)
  local out = { kills = killed and 1 or 0, finished_first = killed and 0 or 1, orphans = #orphans }
  local left = temps(RUN .. "/pre/" .. DS)
  out.left_after_kill = #left
  if not lunet(RUN, "preprocess " .. DS .. " -c 2d -q", DIR .. "/r.log") then
    out.resume_failed = 1
    problem("preprocess", i, "resume failed: " .. (readfile(DIR .. "/r.log") or ""))
    return out, "resume failed"
  end
  left = temps(RUN .. "/pre/" .. DS)
  out.left_after_resume = #left
  if #left > 0 then problem("preprocess", i, "left after the resume: " .. table.concat(left, " ")) end
  local differ = {}
  local ref = files(PRE_DS .. "/" .. CFG_DIR)
  local got = files(RUN .. "/pre/" .. DS .. "/" .. CFG_DIR)
  for _, n in ipairs(ref) do
    if n:match("%.lcs$") or n:match("%.json$") and not n:match("provenance") then
      if readfile(PRE_DS .. "/" .. CFG_DIR .. "/" .. n) ~= readfile(RUN .. "/pre/" .. DS .. "/" .. CFG_DIR .. "/" .. n) then
        differ[#differ + 1] = n
      end
    elseif n:match("provenance%.json$") then
      local a, b = json.read(PRE_DS .. "/" .. CFG_DIR .. "/" .. n), readfile(RUN .. "/pre/" .. DS .. "/" .. CFG_DIR .. "/" .. n)
      b = b and json.decode(b)
      if not b or json.encode(a.payload) ~= json.encode(b.payload) or a.config_digest ~= b.config_digest then
        differ[#differ + 1] = n
      end
    end
  end
  if #got ~= #ref then differ[#differ + 1] = ("%d files, reference %d"):format(#got, #ref) end
  for _, n in ipairs(files(PRE_DS .. "/gt_segmentations")) do
    if readfile(PRE_DS .. "/gt_segmentations/" .. n) ~= readfile(RUN .. "/pre/" .. DS .. "/gt_segmentations/" .. n) then
      differ[#differ + 1] = "gt_segmentations/" .. n
    end
  end
  if #differ > 0 then problem("preprocess", i, "differs from the reference: " .. table.concat(differ, " ", 1, math.min(5, #differ))) end
  out.equal, out.differ = #differ == 0 and 1 or 0, #differ > 0 and 1 or 0
  return out, (killed and "killed" or "finished before the kill") .. (#left > 0 and ", leftovers" or "")
end

local function near(a, b, rel, abs) return math.abs(a - b) <= rel * math.abs(b) + abs end

local function stage_train(i)
  fresh_run_root()
  sh("ln -s " .. q(PRE_DS .. "/" .. CFG_DIR) .. " " .. q(RUN .. "/pre/" .. DS .. "/" .. CFG_DIR))
  sh("ln -s " .. q(PRE_DS .. "/gt_segmentations") .. " " .. q(RUN .. "/pre/" .. DS .. "/gt_segmentations"))
  local pid, shell = spawn(RUN, "train " .. TRAIN_ARGS, DIR .. "/k.log")
  local killed, orphans = kill_after(pid, shell, math.random() * T_TR * 0.9)
  local out = { kills = killed and 1 or 0, finished_first = killed and 0 or 1, orphans = #orphans }
  local F = RUN .. "/" .. FOLD
  out.left_after_kill = #temps(F)
  if not lunet(RUN, "train " .. TRAIN_ARGS .. " --continue", DIR .. "/r.log") then
    out.resume_failed = 1
    problem("train", i, "resume failed: " .. (readfile(DIR .. "/r.log") or ""):sub(-600))
    return out, "resume failed"
  end
  local left = temps(F)
  out.left_after_resume = #left
  if #left > 0 then problem("train", i, "left after the resume: " .. table.concat(left, " ")) end
  local differ = {}
  local okL, L = pcall(logging_of, F .. "/checkpoint_final.pth")
  local R = logging_of(REF .. "/" .. FOLD .. "/checkpoint_final.pth")
  if not okL then differ[#differ + 1] = "checkpoint_final: " .. tostring(L)
  else
    if #L.train_losses ~= #R.train_losses then differ[#differ + 1] = ("%d epochs logged"):format(#L.train_losses) end
    for e = 1, math.min(#L.train_losses, #R.train_losses) do
      if not near(L.train_losses[e], R.train_losses[e], 1e-5, 1e-6) then
        differ[#differ + 1] = ("epoch %d loss %.8g vs %.8g"):format(e - 1, L.train_losses[e], R.train_losses[e])
      end
      if not near(L.mean_fg_dice[e], R.mean_fg_dice[e], 0, 1e-3) then
        differ[#differ + 1] = ("epoch %d pseudo Dice %.6g vs %.6g"):format(e - 1, L.mean_fg_dice[e], R.mean_fg_dice[e])
      end
    end
  end
  local sa, sb = readfile(F .. "/validation/summary.json"), readfile(REF .. "/" .. FOLD .. "/validation/summary.json")
  if not sa then differ[#differ + 1] = "no validation/summary.json"
  else
    local da, db = json.decode(sa).foreground_mean.Dice, json.decode(sb).foreground_mean.Dice
    if not near(da, db, 0, 1e-3) then differ[#differ + 1] = ("validation Dice %.6g vs %.6g"):format(da, db) end
  end
  if #differ > 0 then problem("train", i, "differs from the reference: " .. table.concat(differ, "; ", 1, math.min(4, #differ))) end
  out.equal, out.differ = #differ == 0 and 1 or 0, #differ > 0 and 1 or 0
  return out, (killed and "killed" or "finished before the kill")
end

local function stage_predict(i)
  local outdir = DIR .. "/pred_run"
  sh("rm -rf " .. q(outdir))
  local pid, shell = spawn(REF, PRED_ARGS:format(q(outdir)), DIR .. "/k.log")
  local killed, orphans = kill_after(pid, shell, math.random() * T_PR * 0.9)
  local out = { kills = killed and 1 or 0, finished_first = killed and 0 or 1, orphans = #orphans }
  if #orphans > 0 then problem("predict", i, #orphans .. " child processes outlived the killed predict") end
  local left = temps(outdir)
  out.left_after_kill = #left
  if not lunet(REF, PRED_ARGS:format(q(outdir)), DIR .. "/r.log") then
    out.resume_failed = 1
    problem("predict", i, "rerun failed: " .. (readfile(DIR .. "/r.log") or ""):sub(-600))
    return out, "rerun failed"
  end
  left = temps(outdir)
  out.left_after_resume = #left
  if #left > 0 then problem("predict", i, "left after the rerun: " .. table.concat(left, " ")) end
  local differ = {}
  local ref, got = files(REF .. "/pred"), files(outdir)
  local set = {}
  for _, n in ipairs(got) do set[n] = true end
  for _, n in ipairs(ref) do
    if not set[n] then differ[#differ + 1] = n .. " missing"
    elseif readfile(REF .. "/pred/" .. n) ~= readfile(outdir .. "/" .. n) and not n:match("%.json$") then
      differ[#differ + 1] = n
    end
    set[n] = nil
  end
  for n in pairs(set) do if not is_temp(n) then differ[#differ + 1] = n .. " extra" end end
  if #differ > 0 then problem("predict", i, "differs from the reference: " .. table.concat(differ, " ", 1, math.min(5, #differ))) end
  out.equal, out.differ = #differ == 0 and 1 or 0, #differ > 0 and 1 or 0
  return out, (killed and "killed" or "finished before the kill")
end

local RUNNERS = { preprocess = stage_preprocess, train = stage_train, predict = stage_predict }
local t_all = clock.now()
for stage in STAGES:gmatch("%S+") do
  local run = assert(RUNNERS[stage], "unknown stage " .. stage)
  for i = 1, KILLS do
    local s0 = clock.now()
    local out, what = run(i)
    record(stage, out)
    print(("%-10s kill %2d/%d: %s; %s (%.1f s)"):format(stage, i, KILLS, what,
      (out.differ or 0) > 0 and "DIFFERS" or ((out.resume_failed or 0) > 0 and "FAILED" or "equal"), clock.now() - s0))
    io.stdout:flush()
  end
end

print(("\ntally (%d kills per stage, seed %d, %.0f s):"):format(KILLS, SEED, clock.now() - t_all))
print(("%-10s %6s %9s %6s %7s %8s %12s %14s %8s"):format("stage", "kills", "finished", "equal", "differ", "failed",
  "temp@kill", "temp@resume", "orphans"))
local bad = #problems > 0
for stage in STAGES:gmatch("%S+") do
  local t = tally[stage]
  if t then
    print(("%-10s %6d %9d %6d %7d %8d %12d %14d %8d"):format(stage, t.kills, t.finished_first, t.equal, t.differ,
      t.resume_failed, t.left_after_kill, t.left_after_resume, t.orphans))
  end
end
if bad then
  print("\nproblems:")
  for _, p in ipairs(problems) do print("  " .. p) end
end
if os.getenv("FAULTS_KEEP") ~= "1" then sh("rm -rf " .. q(DIR)) else print("work folder kept: " .. DIR) end
os.exit(bad and 1 or 0)
