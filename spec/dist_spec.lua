-- Data-parallel training over MPI (lunet.dist, lunet.core.dist; issue #28): nnU-Net's batch split, the split
-- training step, and, under `mpirun -np 2` (pending when Open MPI is not installed; `make test` installs it), the
-- averaged gradient against the single-process gradient of the same global batch, a 2-rank training of a tiny
-- dataset, and the end of every rank when one fails.
local lunet = require "lunet"
local core = lunet.core
local dist = require "lunet.dist"
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local tmp = require "spec.support.tmp"

local ROOT = os.getenv("PWD") or "."
local F = "spec/fixtures/net/"

local function have_mpirun()
  return core.dist.compiled() and os.execute("command -v mpirun >/dev/null 2>&1") == true
end
local function readfile(p)
  local f = io.open(p, "rb")
  if not f then return "" end
  local s = f:read("a")
  f:close()
  return s
end
local function floats(s)
  local t = {}
  for i = 1, #s // 4 do t[i] = string.unpack("<f", s, 4 * i - 3) end
  return t
end

-- Under `make asan` the ranks keep ASan and UBSan but not LeakSanitizer: Open MPI's components keep their state for
-- the process's life, from frames LSan cannot name (no suppression can single them out); Lunet's own code runs
-- leak-checked in every single-process spec.
local function no_leak_check()
  local asan = os.getenv("ASAN_OPTIONS")
  return asan and ("ASAN_OPTIONS=" .. tmp.quote(asan .. ":detect_leaks=0") .. " ") or ""
end

-- The shell line that runs cmd as 2 ranks on this machine (oversubscribed: the specs run on 2 shared cores), with
-- the environment a lunet child needs plus env, passed to the ranks; launcher: what starts mpirun ("mpirun").
local function mpirun_line(env, cmd, launcher)
  local names = { "LUA_PATH", "LUA_CPATH", "LUNET_CACHE_DIR" }
  local pre = ("LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' LUA_CPATH='%s/build/?.so;;' "):format(ROOT, ROOT, ROOT)
    .. no_leak_check()
  for k, v in pairs(env or {}) do pre = pre .. k .. "=" .. tmp.quote(v) .. " "; names[#names + 1] = k end
  local x = {}
  for _, n in ipairs(names) do x[#x + 1] = "-x " .. n end
  return ("%s%s --oversubscribe --allow-run-as-root -np 2 %s %s"):format(pre, launcher or "mpirun",
    table.concat(x, " "), cmd)
end

-- mpirun_line run to completion (at most limit seconds) into log; returns the exit status and the seconds it took.
local function mpirun(env, cmd, log, limit)
  local t0 = lunet.util.clock.now()
  local full = ("%s > %s 2>&1"):format(mpirun_line(env, cmd, ("timeout %d mpirun"):format(limit or 300)), log)
  local _, _, code = os.execute(full)
  return code, lunet.util.clock.now() - t0
end

describe("dist (one process)", function()
  it("is a world of one rank when no MPI launcher started the process", function()
    assert.is_false(core.dist.launched())
    assert.are.equal(1, dist.size())
    assert.are.equal(0, dist.rank())
    assert.are.equal(7.5, dist.mean(7.5))
    assert.are.same({ 1, 2 }, dist.sum({ 1, 2 }))
    assert.is_nil(dist.device(nil))
  end)

  it("splits the global batch and the oversampling as nnUNetTrainer._set_batch_size_and_oversample", function()
    -- values printed by nnunetv2's code for oversample_foreground_percent = 0.33
    local want = {
      [2] = { [2] = { { 1, 0.0 }, { 1, 1.0 } } },
      [3] = { [2] = { { 2, 0.0 }, { 1, 1.0 } }, [3] = { { 1, 0.0 }, { 1, 0.0 }, { 1, 1.0 } } },
      [5] = { [2] = { { 3, 0.0 }, { 2, 1.0 } }, [3] = { { 2, 0.0 }, { 2, 0.5 }, { 1, 1.0 } },
              [4] = { { 2, 0.0 }, { 1, 0.0 }, { 1, 1.0 }, { 1, 1.0 } } },
      [12] = { [2] = { { 6, 0.0 }, { 6, 2 / 3 } }, [4] = { { 3, 0.0 }, { 3, 0.0 }, { 3, 1 / 3 }, { 3, 1.0 } } },
    }
    for g, byn in pairs(want) do
      for n, ranks in pairs(byn) do
        for r, w in ipairs(ranks) do
          local b, o = dist.split_batch(g, 0.33, n, r - 1)
          assert.are.equal(w[1], b)
          assert.is_true(math.abs(w[2] - o) < 1e-12, ("g %d n %d r %d: %g"):format(g, n, r - 1, o))
        end
      end
    end
    assert.are.same({ 2, 0.33 }, { dist.split_batch(2, 0.33, 1, 0) })
    assert.has_error(function() dist.split_batch(2, 0.33, 3, 0) end)
  end)

  it("maps local ranks onto the GPUs (the single-process default's kind), modulo their number", function()
    local devs = { { index = 0, type = "cpu" }, { index = 1, type = "gpu" }, { index = 2, type = "gpu" } }
    local got = {}
    for lr = 0, 2 do got[#got + 1] = dist.device(nil, devs, lr, 3) end
    assert.are.same({ 1, 2, 1 }, got)
    assert.are.equal(0, dist.device(nil, { { index = 0, type = "cpu" } }, 1, 2)) -- ranks share PoCL's CPU device
    assert.are.equal(5, dist.device(5, devs, 1, 2))                            -- --device D pins every rank
  end)

  it("reads the gradient bucket size from LUNET_BUCKET_MB and attaches none in a world of one rank", function()
    local env = os.getenv
    local function with(v, fn)
      os.getenv = function(k) if k == "LUNET_BUCKET_MB" then return v end return env(k) end -- luacheck: ignore
      local ok, res = pcall(fn)
      os.getenv = env -- luacheck: ignore
      if not ok then error(res, 0) end
      return res
    end
    assert.are.equal(25, with(nil, dist.bucket_mb))
    assert.are.equal(0.5, with("0.5", dist.bucket_mb))
    assert.are.equal(0, with("0", dist.bucket_mb))
    assert.has_error(function() with("big", dist.bucket_mb) end)
    assert.has_error(function() with("-1", dist.bucket_mb) end)
    local a = lunet.net(F .. "tiny_plans.json", "tiny3d", 1, 3)
    assert.are.equal(0, dist.setup_buckets(a, 0.001))
    assert.are.equal(0, (core.dist.bucket_stats(a.core)))
  end)

  it("train_grad then train_update is bit-identical to the fused train_step", function()
    local x, seg = lunet.io.npy.read(F .. "tiny3d_x.npy"), lunet.io.npy.read(F .. "tiny3d_seg.npy")
    local function net()
      local a = lunet.net(F .. "tiny_plans.json", "tiny3d", 1, 3)
      a:load(F .. "tiny3d_init.pth")
      return a
    end
    local a, b = net(), net()
    for _ = 1, 2 do
      local la, ga = a:train_step { data = x, target = seg, lr = 0.01 }
      local o = b:train_opts { lr = 0.01 }
      local lb = b.core:train_grad(x, seg, o)
      local gb = b.core:train_update(o)
      assert.are.equal(la, lb)
      assert.are.equal(ga, gb)
    end
    assert.is_true(a.core:flat(0) == b.core:flat(0))
    assert.is_true(a.core:flat(2) == b.core:flat(2))
  end)
end)

local function dbg_val_cases(fold) return json.read(fold .. "/debug.json").num_val_cases end

describe("dist over mpirun -np 2", function()
  local dir
  setup(function() dir = tmp.dir() end)
  teardown(function() if dir then tmp.remove(dir) end end)

  it("the averaged gradient of 2 ranks equals the single-process gradient of the global batch (1e-5 relative)",
    function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local out = dir .. "/grad.txt"
      local code = mpirun(nil, "lua5.4 spec/support/dist_grad.lua " .. out, dir .. "/grad.log")
      assert.are.equal(0, code, readfile(dir .. "/grad.log"))
      local g, p, l = readfile(out):match("(%S+) (%S+) (%S+)")
      assert.is_true(tonumber(g) < 1e-5, "gradient rel diff " .. tostring(g))
      assert.is_true(tonumber(p) < 1e-6, "parameters after the update differ by " .. tostring(p))
      assert.is_true(tonumber(l) < 1e-6, "loss differs by " .. tostring(l))
    end)

  it("with the batch Dice, its sums reduced over the ranks give the global batch's gradient (1e-5 relative)", function()
    if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
    local out = dir .. "/grad_bd.txt"
    local code = mpirun(nil, "lua5.4 spec/support/dist_grad.lua " .. out .. " batch_dice", dir .. "/grad_bd.log")
    assert.are.equal(0, code, readfile(dir .. "/grad_bd.log"))
    local g, p, l = readfile(out):match("(%S+) (%S+) (%S+)")
    assert.is_true(tonumber(g) < 1e-5, "gradient rel diff " .. tostring(g))
    assert.is_true(tonumber(p) < 1e-6, "parameters after the update differ by " .. tostring(p))
    assert.is_true(tonumber(l) < 1e-6, "loss differs by " .. tostring(l))
  end)

  it("gradients averaged in buckets during the backward equal the average after it, bit for bit", function()
    if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
    local out = dir .. "/grad_buckets.txt"
    local code = mpirun(nil, "lua5.4 spec/support/dist_grad.lua " .. out .. " buckets", dir .. "/grad_buckets.log")
    assert.are.equal(0, code, readfile(dir .. "/grad_buckets.log"))
    local d, nb, cut, early = readfile(out):match("(%S+) (%S+) (%S+) (%S+)")
    assert.are.equal(0, tonumber(d), "bucketed gradient differs by " .. tostring(d))
    assert.is_true(tonumber(nb) > 10, "buckets: " .. tostring(nb))
    assert.is_true(tonumber(cut) > 0, "no bucket boundary inside a tensor")
    -- the reads (and so the reductions) of most buckets start before the backward reaches the first layers
    assert.is_true(tonumber(early) > tonumber(nb) // 2, ("%s of %s buckets read early"):format(early, nb))
  end)

  it("kill -9 of one rank ends every rank non-zero within bounded time", function()
    if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
    local code, secs = mpirun(nil, "lua5.4 spec/support/dist_fault.lua kill", dir .. "/kill.log", 120)
    assert.are_not.equal(0, code)
    assert.are_not.equal(124, code, "timed out: " .. readfile(dir .. "/kill.log")) -- timeout(1) had to stop it
    assert.is_true(secs < 60)
  end)

  it("an error on one rank aborts every rank, naming the failed rank", function()
    if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
    local code = mpirun(nil, "lua5.4 spec/support/dist_fault.lua raise", dir .. "/raise.log", 120)
    assert.are_not.equal(0, code)
    assert.are_not.equal(124, code)
    local log = readfile(dir .. "/raise.log")
    assert.truthy(log:find("rank 1 of 2", 1, true), log)
    assert.truthy(log:find("planned failure of rank 1", 1, true), log)
  end)

  describe("2-rank training", function()
    local RAW, PRE, RES, DS, env, FOLD
    setup(function()
      if not have_mpirun() then return end
      RAW, PRE, RES, DS = dir .. "/raw", dir .. "/pre", dir .. "/res", "Dataset951_DiscMPI"
      env = { nnUNet_raw = RAW, nnUNet_preprocessed = PRE, nnUNet_results = RES }
      os.execute("mkdir -p " .. PRE .. " " .. RES)
      local disc = require "spec.support.disc"
      disc.write(RAW, DS, { cases = 6, size = 48, seed = 5, centre = { 16, 16 }, radius = { 7, 5 } })
      assert(os.execute(disc.env_prefix(RAW, PRE, RES, ROOT) .. ROOT .. "/scripts/lunet plan_and_preprocess -d 951 -c 2d -q > "
        .. dir .. "/pp.log 2>&1"), readfile(dir .. "/pp.log"))
      local p = json.read(PRE .. "/" .. DS .. "/nnUNetPlans.json")
      p.plans_name = "TinyPlans"
      local c = p.configurations["2d"]
      c.batch_size = 4
      local kw = c.architecture.arch_kwargs
      local f = json.array {}
      for s = 1, kw.n_stages do f[s] = math.min(8, 4 << (s - 1)) end
      kw.features_per_stage = f
      json.write(PRE .. "/" .. DS .. "/TinyPlans.json", p)
      FOLD = RES .. "/" .. DS .. "/nnUNetTrainer__TinyPlans__2d/fold_0"
    end)

    it("writes complete rank-0 outputs, the same files as a single-process run", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local code = mpirun(env, ROOT .. "/scripts/lunet train 951 2d 0 -p TinyPlans --epochs 2 --iters 3 --val-iters 2 -q",
        dir .. "/train.log")
      assert.are.equal(0, code, readfile(dir .. "/train.log"))
      for _, n in ipairs({ "checkpoint_final.pth", "checkpoint_best.pth", "progress.png", "debug.json",
                           "validation/summary.json" }) do
        assert.is_true(paths.isfile(FOLD .. "/" .. n), n)
      end
      assert.is_false(paths.isfile(FOLD .. "/checkpoint_latest.pth"))
      local logs = {}
      for _, n in ipairs(paths.listdir(FOLD)) do if n:match("^training_log_") then logs[#logs + 1] = n end end
      assert.are.equal(1, #logs) -- rank 0 alone writes the log
      local log = readfile(FOLD .. "/" .. logs[1])
      assert.truthy(log:find("Data-parallel training on 2 ranks (MPI): global batch 4, this rank's batch 2", 1, true), log)
      assert.truthy(log:find("Gradient allreduce (2 ranks)", 1, true), log)
      -- the validation cases were shared out over the ranks; rank 0 evaluated all of them
      local summary = json.read(FOLD .. "/validation/summary.json")
      assert.are.equal(dbg_val_cases(FOLD), #summary.metric_per_case)
      local dbg = json.read(FOLD .. "/debug.json")
      assert.are.equal(2, dbg.world_size)
      assert.are.same({ 2, 2 }, dbg.batch_size_per_rank)
      local h = lunet.net.read_header(FOLD .. "/checkpoint_final.pth")
      assert.are.equal(2, h.meta.current_epoch)
      assert.are.equal(2, #h.meta.logging.train_losses)
      assert.are.equal(2, h.meta.world_size)
    end)

    it("kill -9 of one rank during training ends every rank non-zero, leaving no half-written checkpoint", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local rcfile, pidfile = dir .. "/kill_train.rc", dir .. "/kill_train.pid"
      os.execute(("(%s > %s/kill_train.log 2>&1; echo $? > %s) & echo $! > %s"):format(mpirun_line(env, ROOT ..
        "/scripts/lunet train 951 2d 1 -p TinyPlans --epochs 50 --iters 20 --val-iters 2 -q"), dir, rcfile, pidfile))
      -- rank 1: the lunet process of this run whose environment says OMPI_COMM_WORLD_RANK=1
      local function rank1()
        for pid in io.popen("ls /proc"):lines() do
          if pid:match("^%d+$") then
            local cmd = readfile("/proc/" .. pid .. "/cmdline")
            if cmd:find("scripts/lunet", 1, true) and cmd:find("\0002d\0001\000", 1, true) and
                readfile("/proc/" .. pid .. "/environ"):find("OMPI_COMM_WORLD_RANK=1\000", 1, true) then
              return pid
            end
          end
        end
      end
      local clock = lunet.util.clock
      local FOLD1 = FOLD:gsub("fold_0$", "fold_1")
      local t0, victim = clock.now(), nil
      -- wait until training runs (the first epoch's checkpoint_best exists), then kill rank 1
      while clock.now() - t0 < 120 do
        victim = rank1()
        if victim and paths.isfile(FOLD1 .. "/checkpoint_best.pth") then break end
        os.execute("sleep 0.2")
      end
      assert.is_truthy(victim, "rank 1 not found: " .. readfile(dir .. "/kill_train.log"))
      os.execute("kill -9 " .. victim)
      local t1 = clock.now()
      while clock.now() - t1 < 60 and readfile(rcfile) == "" do os.execute("sleep 0.2") end
      local rc = tonumber(readfile(rcfile))
      if not rc then os.execute("kill -9 " .. readfile(pidfile):gsub("%s", "")) end
      assert.is_truthy(rc, "mpirun still running 60 s after the kill")
      assert.are_not.equal(0, rc)
      assert.is_nil(rank1())
      for _, n in ipairs(paths.listdir(FOLD1)) do assert.is_nil(n:match("%.tmp"), n) end
      assert.is_true(pcall(lunet.net.read_header, FOLD1 .. "/checkpoint_best.pth"))
    end)

    it("SIGINT to mpirun (Ctrl-C) ends every rank, mpirun non-zero, leaving no half-written checkpoint", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local rcfile = dir .. "/int_train.rc"
      -- a background job of a non-interactive shell starts with SIGINT ignored; a terminal's mpirun has it default
      os.execute(("(%s > %s/int_train.log 2>&1; echo $? > %s) &"):format(mpirun_line(env, ROOT ..
        "/scripts/lunet train 951 2d 3 -p TinyPlans --epochs 50 --iters 20 --val-iters 2 -q", "env --default-signal=INT mpirun"),
        dir, rcfile))
      local function procs() -- mpirun and the ranks of this run: pid -> "mpirun" | "rank"
        local got = {}
        for pid in io.popen("ls /proc"):lines() do
          if pid:match("^%d+$") then
            local cmd = readfile("/proc/" .. pid .. "/cmdline")
            if cmd:find(ROOT .. "/scripts/lunet", 1, true) and cmd:find("\0002d\0003\000", 1, true) and
                readfile("/proc/" .. pid .. "/environ"):find("nnUNet_results=" .. RES .. "\000", 1, true) then
              got[pid] = cmd:match("^[^%z]*mpirun%z") and "mpirun" or "rank"
            end
          end
        end
        return got
      end
      local clock = lunet.util.clock
      local FOLD3 = FOLD:gsub("fold_0$", "fold_3")
      local t0, mpi, nrank = clock.now(), nil, 0
      while clock.now() - t0 < 120 do -- until training runs (the first epoch's checkpoint_best exists)
        mpi, nrank = nil, 0
        for pid, kind in pairs(procs()) do if kind == "mpirun" then mpi = pid else nrank = nrank + 1 end end
        if mpi and nrank == 2 and paths.isfile(FOLD3 .. "/checkpoint_best.pth") then break end
        os.execute("sleep 0.2")
      end
      assert.is_truthy(mpi and nrank == 2, "mpirun and 2 ranks not found: " .. readfile(dir .. "/int_train.log"))
      os.execute("kill -INT " .. mpi)
      local t1 = clock.now()
      while clock.now() - t1 < 30 and readfile(rcfile) == "" do os.execute("sleep 0.2") end
      local rc = tonumber(readfile(rcfile))
      if not rc then for pid in pairs(procs()) do os.execute("kill -9 " .. pid) end end
      assert.is_truthy(rc, "mpirun still running 30 s after SIGINT")
      assert.are_not.equal(0, rc)
      assert.is_nil(next(procs()), "a rank outlived mpirun")
      for _, n in ipairs(paths.listdir(FOLD3)) do assert.is_nil(n:match("%.tmp"), n) end
      for _, n in ipairs(paths.listdir(FOLD3)) do
        if n:match("%.pth$") then assert.is_true(pcall(lunet.net.read_header, FOLD3 .. "/" .. n), n) end
      end
    end)

    it("the step on a worker thread (prefetching the next batch, small gradient buckets) gives the same weights as " ..
    "the plain step (one allreduce after the backward)", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local weights = {}
      for _, pf in ipairs({ "1", "0" }) do
        local res = dir .. "/res_pf" .. pf
        os.execute("mkdir -p " .. res)
        local e = { nnUNet_raw = RAW, nnUNet_preprocessed = PRE, nnUNet_results = res, LUNET_PREFETCH = pf,
                    LUNET_BUCKET_MB = pf == "1" and "0.002" or "0" }
        local code = mpirun(e, ROOT .. "/scripts/lunet train 951 2d 2 -p TinyPlans --epochs 1 --iters 4 --val-iters 1 -q",
          dir .. "/pf" .. pf .. ".log")
        assert.are.equal(0, code, readfile(dir .. "/pf" .. pf .. ".log"))
        local net = lunet.net(PRE .. "/" .. DS .. "/TinyPlans.json", "2d", 1, 2)
        net:load(res .. "/" .. DS .. "/nnUNetTrainer__TinyPlans__2d/fold_2/checkpoint_final.pth")
        weights[pf] = net.core:flat(0)
      end
      assert.is_true(weights["1"] == weights["0"])
    end)

    it("--continue on 2 ranks resumes from the checkpoint", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local code = mpirun(env, ROOT .. "/scripts/lunet train 951 2d 0 -p TinyPlans --epochs 3 --iters 3 --val-iters 2 " ..
        "--continue -q", dir .. "/cont.log")
      assert.are.equal(0, code, readfile(dir .. "/cont.log"))
      local h = lunet.net.read_header(FOLD .. "/checkpoint_final.pth")
      assert.are.equal(3, h.meta.current_epoch)
      assert.are.equal(3, #h.meta.logging.train_losses)
    end)

    it("a single process continues a 2-rank run's checkpoint (same files), warning that its batches differ", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      local disc = require "spec.support.disc"
      local log = dir .. "/single.log"
      local ok = os.execute(disc.env_prefix(RAW, PRE, RES, ROOT) .. ROOT .. "/scripts/lunet train 951 2d 0 -p TinyPlans " ..
        "--epochs 4 --iters 3 --val-iters 2 --continue > " .. log .. " 2>&1")
      assert.is_true(ok == true, readfile(log))
      local h = lunet.net.read_header(FOLD .. "/checkpoint_final.pth")
      assert.are.equal(4, h.meta.current_epoch)
      assert.is_nil(h.meta.world_size)
      assert.truthy(readfile(log):find("was written by a run on 2 rank(s), this run has 1", 1, true), readfile(log))
    end)

    it("--val-only on 2 ranks shares the validation cases out and rank 0 writes summary.json", function()
      if not have_mpirun() then pending("mpirun or MPI support missing (make deps installs openmpi-bin, libopenmpi-dev)") return end
      os.remove(FOLD .. "/validation/summary.json")
      local code = mpirun(env, ROOT .. "/scripts/lunet train 951 2d 0 -p TinyPlans --val-only -q", dir .. "/val.log")
      assert.are.equal(0, code, readfile(dir .. "/val.log"))
      local summary = json.read(FOLD .. "/validation/summary.json")
      assert.are.equal(dbg_val_cases(FOLD), #summary.metric_per_case)
    end)
  end)
end)
