-- Folder locks (lunet.core.lock): a second run on a folder in use fails at once naming the holder's pid; a holder
-- killed with SIGKILL leaves a lock that the next run takes over; training (fold folder), prediction (output folder)
-- and preprocessing (configuration folder) hold one for their whole run.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"

local ROOT = os.getenv("PWD") or "."
local LUNET = ROOT .. "/scripts/lunet"

local tmp = os.tmpname()
os.remove(tmp)
local DIR = tmp .. "_lock"
local RAW, PRE, RES = DIR .. "/raw", DIR .. "/pre", DIR .. "/res"
local DS = "Dataset951_LockDisc"

local function sh(cmd) return os.execute(cmd) end

local disc = require "spec.support.disc"
local function env_prefix() return disc.env_prefix(RAW, PRE, RES, ROOT) end

local function readfile(p)
  local f = assert(io.open(p, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

-- the pid a lock file names (the spec's own pid for a lock the spec holds)
local function holder_pid(h) return tonumber(readfile(h:path()):match("pid (%d+)")) end

-- A child process that takes the lock on dir and keeps it until killed (20 s at most). Returns its pid and the pipe.
local CHILD = DIR .. "/child.lua"
local function start_holder(dir)
  local p = io.popen(("exec sh -c 'echo $$; exec lua5.4 %s %s'"):format(CHILD, dir), "r")
  local pid = tonumber(p:read("l"))
  assert.are.equal("locked", p:read("l"))
  return pid, p
end

-- 6 cases of 48x48 grey PNGs: a bright disc (label 1) on a darker background; case 0 also as a test image.
local function make_dataset()
  sh("mkdir -p " .. PRE .. " " .. RES)
  disc.write(RAW, DS, { cases = 6, size = 48, seed = 5, centre = { 16, 16 }, radius = { 6, 4 }, test_case = true })
  assert(sh(env_prefix() .. LUNET .. " plan_and_preprocess -d 951 -c 2d -q > " .. DIR .. "/pp.log 2>&1"),
    "plan_and_preprocess failed: " .. DIR .. "/pp.log")
  local f = assert(io.open(CHILD, "w"))
  f:write([[
local h = require("lunet.core").lock.acquire(arg[1], "test folder")
print("locked")
io.stdout:flush()
for _ = 1, 200 do os.execute("sleep 0.1") end
h:release()
]])
  f:close()
end

describe("lock", function()
  setup(function() make_dataset() end)
  teardown(function() sh("rm -rf " .. DIR) end)

  describe("lunet.core.lock", function()
    local dir
    before_each(function()
      dir = DIR .. "/f" .. tostring(math.random(1, 1 << 30))
      paths.mkdirs(dir)
    end)

    it("a second acquire while another process holds it fails at once naming that pid", function()
      local pid, p = start_holder(dir)
      local ok, err = pcall(core.lock.acquire, dir, "fold folder")
      assert.is_false(ok)
      assert.truthy(err:find("fold folder " .. dir .. " is in use by pid " .. pid .. " (", 1, true), err)
      assert.truthy(err:find("child.lua", 1, true), err) -- the holder's command
      sh("kill -9 " .. pid)
      p:close()
    end)

    it("release then acquire works; release removes the lock file; close and release are idempotent", function()
      local h = core.lock.acquire(dir, "fold folder")
      assert.truthy(paths.isfile(dir .. "/.lunet.lock"))
      -- another open of the same file conflicts even in this process
      local ok, err = pcall(core.lock.acquire, dir, "fold folder")
      assert.is_false(ok)
      assert.truthy(err:find("is in use by pid " .. holder_pid(h), 1, true), err)
      h:release()
      h:release()
      assert.is_nil(h:path())
      assert.is_false(paths.isfile(dir .. "/.lunet.lock"))
      do local h2 <close> = core.lock.acquire(dir, "fold folder") end
      local h3 = core.lock.acquire(dir, "fold folder")
      h3:release()
    end)

    it("the lock of a holder killed with SIGKILL is taken over (the stale file stays, flock went with the process)",
      function()
      local pid, p = start_holder(dir)
      assert.is_false((pcall(core.lock.acquire, dir, "x")))
      sh("kill -9 " .. pid)
      p:close()
      assert.truthy(readfile(dir .. "/.lunet.lock"):find("pid " .. pid, 1, true)) -- stale record left behind
      -- the kernel drops a killed process's flock as it tears the process down; on a loaded machine that can
      -- trail the reaping by a moment, so allow a few seconds
      local ok, h
      for _ = 1, 50 do
        ok, h = pcall(core.lock.acquire, dir, "x")
        if ok then break end
        sh("sleep 0.1")
      end
      assert(ok, h)
      assert.are_not.equal(pid, holder_pid(h)) -- rewritten with the new holder
      h:release()
    end)

    it("a missing folder fails with the folder and the reason", function()
      local ok, err = pcall(core.lock.acquire, dir .. "/nope", "fold folder")
      assert.is_false(ok)
      assert.truthy(err:find("cannot lock fold folder " .. dir .. "/nope", 1, true), err)
    end)
  end)

  it("training: a second training of a fold in use fails at once with the holder's pid and writes nothing", function()
    local fold = ("%s/%s/nnUNetTrainer__nnUNetPlans__2d/fold_0"):format(RES, DS)
    paths.mkdirs(fold)
    local h = core.lock.acquire(fold, "fold folder")
    local pid = holder_pid(h)
    local log = DIR .. "/train.log"
    local ok = sh(env_prefix() .. LUNET .. " train " .. DS .. " 2d 0 --epochs 1 --iters 1 --val-iters 1 -q > " ..
      log .. " 2>&1")
    local out = readfile(log)
    h:release()
    assert.is_falsy(ok)
    assert.truthy(out:find("fold folder " .. fold .. " is in use by pid " .. pid, 1, true), out)
    assert.are.same({}, paths.listdir(fold))
  end)

  it("preprocessing: a second run on a configuration folder in use fails at once with the holder's pid", function()
    local dir = PRE .. "/" .. DS .. "/nnUNetPlans_2d/lunet"
    paths.mkdirs(dir)
    local h = core.lock.acquire(dir, "preprocessed configuration folder")
    local pid = holder_pid(h)
    local ds = lunet.dataset.open(RAW .. "/" .. DS)
    local plans = lunet.planner.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
    os.remove(dir .. "/disc_000.json") -- work the run would redo
    local ok, err = pcall(lunet.preprocess.run, ds, plans, "2d", { progress = false, out_root = PRE .. "/" .. DS })
    assert.is_false(ok)
    assert.truthy(tostring(err):find("preprocessed configuration folder " .. dir .. " is in use by pid " .. pid,
      1, true), tostring(err))
    assert.is_false(paths.isfile(dir .. "/disc_000.json"))
    h:release()
    -- once released the run goes through, and leaves no lock file behind
    local sum = lunet.preprocess.run(ds, plans, "2d", { progress = false, out_root = PRE .. "/" .. DS })
    assert.are.equal(1, sum["2d"].done)
    assert.is_false(paths.isfile(dir .. "/.lunet.lock"))
  end)

  it("prediction: a second prediction into an output folder in use fails at once with the holder's pid", function()
    local out = DIR .. "/pred"
    paths.mkdirs(out)
    local h = core.lock.acquire(out, "prediction output folder")
    local pid = holder_pid(h)
    local plans = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
    local dj = json.read(PRE .. "/" .. DS .. "/dataset.json")
    local net = lunet.net.new(plans, "2d", 1, 2, { seed = 1, dataset_json = dj })
    local ok, err = pcall(lunet.predict.folder, { input = RAW .. "/" .. DS .. "/imagesTs", output = out,
      models = { net }, plans_json = plans, dataset_json = dj, configuration = "2d", progress = false })
    h:release()
    assert.is_false(ok)
    assert.truthy(tostring(err):find("prediction output folder " .. out .. " is in use by pid " .. pid, 1, true),
      tostring(err))
    assert.is_false(paths.isfile(out .. "/predict_from_raw_data_args.json"))
  end)
end)
