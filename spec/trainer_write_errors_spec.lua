-- Write failures during training reach the training log and stderr with the OS error, the file, and what became of
-- the previous file: a checkpoint that cannot be written stops the run (the previous one intact), a progress.png
-- that cannot be written is a warning. The C writer's message carries the OS error: shown with a real failure
-- (RLIMIT_FSIZE via `ulimit -f`, SIGXFSZ ignored, so write(2) fails with EFBIG "File too large" as it fails with
-- ENOSPC on a full disk). The trainer's handling is shown with the test-only LUNET_TEST_FAIL_WRITE=<pattern>
-- injection of ENOSPC (lua/lunet/trainer.lua). Training is tiny: 6 cases of 32x32, 1 epoch, 2 steps.
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"
local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_writeerr"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local DS = "Dataset951_DiscW"
local disc = require "spec.support.disc"
local function env_prefix() return disc.env_prefix(RAW, PRE, RES, ROOT) end

local function readfile(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end

local function logs_of(F)
  local all = {}
  for _, n in ipairs(paths.isdir(F) and paths.listdir(F) or {}) do
    if n:match("^training_log_") then all[#all + 1] = readfile(F .. "/" .. n) end
  end
  return table.concat(all)
end

local F = ("%s/%s/nnUNetTrainer__TinyPlans__2d/fold_0"):format(RES, DS)
local ARGS = DS .. " 2d 0 -p TinyPlans --epochs 1 --iters 2 --val-iters 1 --seed 3 -q"

-- runs `lunet train ARGS` with a shell prefix; returns success, stdout+stderr
local function train(prefix, out)
  local ok = os.execute(("sh -c \"%s exec env %s %s train %s\" > %s 2>&1"):format(prefix or "", env_prefix(), LUNET,
    ARGS, out))
  return ok, readfile(out)
end

describe("training write failures", function()
  setup(function()
    os.execute("mkdir -p " .. PRE .. " " .. RES)
    disc.write(RAW, DS, { cases = 6, size = 32, seed = 11, centre = { 12, 14 }, radius = { 5, 4 } })
    assert(os.execute(env_prefix() .. LUNET .. " plan_and_preprocess -d 951 -c 2d -q > " .. DIR .. "/pp.log 2>&1"),
      readfile(DIR .. "/pp.log"))
    local p = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
    p.plans_name = "TinyPlans"
    local kw = p.configurations["2d"].architecture.arch_kwargs
    local f = json.array {}
    for s = 1, kw.n_stages do f[s] = math.min(16, 4 << (s - 1)) end
    kw.features_per_stage = f
    json.write(PRE .. "/" .. DS .. "/TinyPlans.json", p)
    -- a first, successful run leaves checkpoints to keep intact
    local ok, out = train(nil, DIR .. "/first.log")
    assert(ok, out)
    assert.is_true(paths.isfile(F .. "/checkpoint_best.pth"))
  end)
  teardown(function() if not os.getenv("KEEP") then os.execute("rm -rf '" .. DIR .. "'") end end)

  it("a real failed write (EFBIG from ulimit -f) carries the OS error and leaves neither file nor temporary file",
    function()
    -- the checkpoint writer (torch_save, as net:save uses it) in a process whose file size limit is 16 KiB;
    -- a whole training run cannot run so: the OpenCL compiler's own files exceed any limit a checkpoint does not
    local out = DIR .. "/efbig.pth"
    local p = assert(io.popen(("sh -c \"trap '' XFSZ; ulimit -f 16; exec lua5.4 -e 'local P = require(\\\"lunet.core\\\")" ..
      ".pickle; local ok, e = pcall(P.torch_save, \\\"%s\\\", string.rep(\\\"x\\\", 100000)); print(ok, e)'\" 2>&1")
      :format(out)))
    local res = p:read("a")
    p:close()
    assert.truthy(res:find("false", 1, true), res)
    assert.truthy(res:find(out .. ": write failed: File too large", 1, true), res)
    for _, n in ipairs(paths.listdir(DIR)) do assert.is_nil(n:match("^efbig%.pth"), "left behind: " .. n) end
  end)

  it("an injected ENOSPC: a checkpoint stops the run, progress.png is a warning and the run finishes", function()
    local before = readfile(F .. "/checkpoint_best.pth")
    local ok, out = train("LUNET_TEST_FAIL_WRITE=^checkpoint_best", DIR .. "/enospc.log")
    assert.is_falsy(ok, out)
    assert.truthy(logs_of(F):find("checkpoint_best.pth: write failed: No space left on device", 1, true))
    assert.truthy(out:find("the previous checkpoint_best.pth is intact", 1, true), out)
    assert.are.equal(before, readfile(F .. "/checkpoint_best.pth"))

    local png = readfile(F .. "/progress.png")
    ok, out = train("LUNET_TEST_FAIL_WRITE=^progress", DIR .. "/png.log")
    assert(ok, out)
    local log = logs_of(F)
    assert.truthy(log:find("WARNING: progress.png not written: " .. F .. "/progress.png: write failed: No space " ..
      "left on device", 1, true), log)
    assert.truthy(out:find("the previous progress.png is intact", 1, true), out)
    assert.are.equal(png, readfile(F .. "/progress.png"))
    assert.is_true(paths.isfile(F .. "/checkpoint_final.pth"))
  end)
end)
