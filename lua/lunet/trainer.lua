--[[ lunet.trainer: nnU-Net v2's nnUNetTrainer loop (nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py:
run_training) driving the C training step.

  local trainer = require "lunet.trainer"
  local run = trainer.train{
    dataset = 4 | "Dataset004_Hippocampus",   plans = "nnUNetPlans" (identifier, path of a .json, or a table),
    configuration = "2d", fold = 0..4 | "all",
    trainer = "nnUNetTrainerNoMirroring" | "my_trainer.lua" (optional: a name on the search path, or a file;
      trainer_file = is the older spelling), rules = "my_rules.lua" (optional: the planning rule set whose trainer
      and augmentation tables the run starts from; default rules/default.lua),
    epochs =, iterations =, val_iterations =   -- override the trainer table (defaults 1000, 250, 50)
    continue = false, val_only = false, npz = false, seed = 0, device = nil (index), threads = 2,
    progress = nil (default: stderr is a terminal -> bar, else one line per epoch; false: silent),
    net = nil (a factory function(plans, cfg, nin, nout, opts) -> network with the lunet.net interface; specs)
  }
  -- also lunet.train(plans, cfg, fold, opts)
  run.folder, run.log (per-epoch lists), run.interrupted (signal number when stopped by SIGINT/SIGTERM),
  run.validation (summary of the final validation, when it ran)

Trainer file (`-tr my_trainer.lua`): a Lua chunk returning overrides of the rules' trainer table, e.g.
  return { name = "nnUNetTrainer_50epochs", num_epochs = 50, initial_lr = 1e-3,
           loss = { weight_ce = 2 }, augmentation = { gamma = { p = 0 } }, save_every = 10 }
Tables merge key by key into rules/default.lua's `trainer` (and `augmentation`); the trainer's name (default: the
file's base name) names the results folder <trainer>__<plans>__<configuration>. Trainers by name: M.find_trainer
searches $LUNET_TRAINERS, ./, then rules/trainers/ (trainer family files: { variants = { name = overrides } }),
M.available() lists the names (docs/training.md).

Resume: every checkpoint carries the epoch, the iteration within the epoch (for SIGINT/SIGTERM stops), the losses
of the epoch so far, both loaders' batch counters (the batch stream depends only on seed and counter), the logging
lists and the best EMA, next to the weights and the SGD momentum; --continue picks final, latest, then best as
nnU-Net does, so a resumed run draws exactly the batches the uninterrupted run would have drawn.
]]
local core = require "lunet.core"
local json = require "lunet.util.json"
local term = require "lunet.util.term"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local clock = require "lunet.util.clock"
local dist = require "lunet.dist"

local M = {}

local NAN = 0 / 0

-- ------------------------------------------------------------------------------------------------ settings
local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local o = {}
  for k, x in pairs(v) do o[k] = deep_copy(x) end
  return setmetatable(o, getmetatable(v))
end

local function merge(base, over, where, file)
  for k, v in pairs(over) do
    if type(v) == "table" and type(base[k]) == "table" and not json.is_array(v) and #v == 0 then
      merge(base[k], v, where .. "." .. tostring(k), file)
    else
      base[k] = deep_copy(v)
    end
  end
end

--- Reads a trainer file: returns overrides (table) and the trainer name. Errors name the file (and line).
--- A family file (returning { variants = {...} }) is returned as such, with the name nil.
local function read_trainer_chunk(path)
  local chunk, err = loadfile(path, "t")
  if not chunk then error("trainer file " .. tostring(err), 0) end
  local ok, res = xpcall(chunk, function(e)
    local msg = tostring(e)
    if not msg:find(path, 1, true) then
      -- name the line of the trainer file where the error happened
      for level = 2, 20 do
        local info = debug.getinfo(level, "Sl")
        if not info then break end
        if info.source == "@" .. path then msg = path .. ":" .. info.currentline .. ": " .. msg; break end
      end
    end
    return msg
  end)
  if not ok then error("trainer file " .. res, 0) end
  if type(res) ~= "table" then
    error(("trainer file %s: must return a table of trainer settings, got %s"):format(path, type(res)), 0)
  end
  return res
end

local function is_family(t) return type(t) == "table" and type(t.variants) == "table" end

function M.load_trainer_file(path)
  local res = read_trainer_chunk(path)
  if is_family(res) then
    local names = {}
    for k in pairs(res.variants) do names[#names + 1] = k end
    table.sort(names)
    error(("trainer file %s is a trainer family: name one of its trainers with -tr (%s)"):format(path,
      table.concat(names, ", ")), 0)
  end
  local name = res.name or paths.basename(path):gsub("%.lua$", "")
  return res, name
end

--- The trainer search path, in order: each directory of $LUNET_TRAINERS (colon-separated), the current
--- directory, then the shipped rules/trainers/. In each: <name>.lua (a trainer file) first, then the trainer
--- families (files returning { variants = {...} }) of $LUNET_TRAINERS's directories and of rules/trainers/.
function M.trainer_dirs()
  local dirs = {}
  local env = os.getenv("LUNET_TRAINERS")
  if env and env ~= "" then
    for d in env:gmatch("[^:]+") do dirs[#dirs + 1] = { dir = d, families = true } end
  end
  dirs[#dirs + 1] = { dir = ".", families = false }
  local def = package.searchpath("lunet.rules.default", package.path)
  if def then dirs[#dirs + 1] = { dir = paths.join(paths.dirname(def), "trainers"), families = true, shipped = true } end
  return dirs
end

local family_cache = {}
local function families_of(dir)
  if family_cache[dir] then return family_cache[dir] end
  local out = {}
  if paths.isdir(dir) then
    local files = {}
    for _, n in ipairs(paths.listdir(dir)) do if n:match("%.lua$") then files[#files + 1] = n end end
    table.sort(files, function(a, b)
      if (a == "defaults.lua") ~= (b == "defaults.lua") then return a == "defaults.lua" end
      return a < b
    end)
    for _, n in ipairs(files) do
      local f = paths.join(dir, n)
      local res = read_trainer_chunk(f)
      if is_family(res) then
        out[#out + 1] = { file = f, family = res.family or n:gsub("%.lua$", ""), about = res.about, variants = res.variants }
      end
    end
  end
  family_cache[dir] = out
  return out
end

--- Every trainer name the search path's families offer: list of {name, family, about, file}, sorted by family
--- file then name; opts.shipped_only: only rules/trainers/.
function M.available(opts)
  local list, seen = {}, {}
  for _, d in ipairs(M.trainer_dirs()) do
    if d.families and (d.shipped or not (opts and opts.shipped_only)) then
      for _, fam in ipairs(families_of(d.dir)) do
        local names = {}
        for k in pairs(fam.variants) do names[#names + 1] = k end
        table.sort(names, function(a, b)
          local na, nb = tonumber(a:match("_(%d+)epoch")), tonumber(b:match("_(%d+)epoch"))
          if na and nb and na ~= nb then return na < nb end
          return a < b
        end)
        for _, n in ipairs(names) do
          if not seen[n] then
            seen[n] = true
            list[#list + 1] = { name = n, family = fam.family, about = fam.about, file = fam.file }
          end
        end
      end
    end
  end
  return list
end

--- Finds a trainer by path (contains "/" or ends in .lua) or by name on the search path (M.trainer_dirs).
--- Returns overrides, the trainer name, and where it came from ("file" or "file: name").
function M.find_trainer(spec)
  if type(spec) ~= "string" or spec == "" then error("trainer: expected a trainer name or file", 2) end
  if spec:find("/", 1, true) or spec:match("%.lua$") then
    if not paths.isfile(spec) then error("trainer file " .. spec .. " not found", 0) end
    local ov, name = M.load_trainer_file(spec)
    return ov, name, spec
  end
  for _, d in ipairs(M.trainer_dirs()) do
    local f = paths.join(d.dir, spec .. ".lua")
    if paths.isfile(f) then
      local ov, name = M.load_trainer_file(f)
      return ov, name, f
    end
    if d.families then
      for _, fam in ipairs(families_of(d.dir)) do
        local v = fam.variants[spec]
        if v ~= nil then
          if type(v) ~= "table" then
            error(("trainer file %s: trainer '%s' must be a table of settings, got %s"):format(fam.file, spec, type(v)), 0)
          end
          local ov = deep_copy(v)
          local name = ov.name or spec
          return ov, name, fam.file .. ": " .. spec
        end
      end
    end
  end
  local names = {}
  for _, t in ipairs(M.available()) do names[#names + 1] = t.name end
  local where = {}
  for _, d in ipairs(M.trainer_dirs()) do where[#where + 1] = d.dir end
  error(("trainer '%s' not found: no %s.lua in %s, and no trainer family there names it. Available: %s"):format(
    spec, spec, table.concat(where, ", "), table.concat(names, ", ")), 0)
end

-- Keys of over that base does not have, at any depth of plain tables (lists replace and are not checked).
local function check_keys(base, over, path, file, what)
  for k, v in pairs(over) do
    local b = base[k]
    local key = path == "" and tostring(k) or (path .. "." .. tostring(k))
    if b == nil and not (path == "" and k == "name") then
      local known = {}
      for kk in pairs(base) do known[#known + 1] = tostring(kk) end
      table.sort(known)
      error(("%s %s: unknown trainer setting '%s' (known%s: %s)"):format(what or "trainer file", file or "?", key,
        path == "" and "" or (" in " .. path), table.concat(known, ", ")), 0)
    end
    if type(v) == "table" and type(b) == "table" and not json.is_array(v) and #v == 0 and not json.is_array(b)
        and #b == 0 and next(b) ~= nil then
      check_keys(b, v, key, file, what)
    end
  end
end
M._check_keys = check_keys

-- The values the trainer reads beyond numbers: refused with the file and key when they are not understood.
local function check_values(tr, file)
  local function bad(key, v, want)
    error(("trainer file %s: trainer setting '%s' = %s: %s"):format(file or "?", key, tostring(v), want), 0)
  end
  local po = tr.probabilistic_oversampling
  if po ~= true and po ~= false and po ~= "match_fixed" then
    bad("probabilistic_oversampling", po, "expected true, false or \"match_fixed\"")
  end
  if tr.lr_schedule ~= "poly" and tr.lr_schedule ~= "cosine" and tr.lr_schedule ~= "warmup_poly" then
    bad("lr_schedule", tr.lr_schedule, "expected \"poly\", \"cosine\" or \"warmup_poly\"")
  end
  if tr.lr_schedule == "warmup_poly" and not (math.type(tr.warmup_epochs) == "integer" and tr.warmup_epochs >= 1) then
    bad("warmup_epochs", tr.warmup_epochs, "expected an integer >= 1")
  end
  local aug = tr.augmentation or {}
  if aug.enabled ~= nil and type(aug.enabled) ~= "boolean" then bad("augmentation.enabled", aug.enabled, "expected a boolean") end
  local axes = aug.mirror and aug.mirror.axes
  if axes ~= nil and axes ~= "auto" and axes ~= "none" then
    if type(axes) ~= "table" then bad("augmentation.mirror.axes", axes, "expected \"auto\", \"none\" or {[\"2d\"] = {...}, [\"3d\"] = {...}}") end
    for k, list in pairs(axes) do
      local n = (k == "2d" and 2) or (k == "3d" and 3)
      if not n then bad("augmentation.mirror.axes." .. tostring(k), list, "only \"2d\" and \"3d\" entries") end
      if type(list) ~= "table" then bad("augmentation.mirror.axes." .. k, list, "expected a list of axes") end
      for _, a in ipairs(list) do
        if math.type(a) ~= "integer" or a < 0 or a >= n then
          bad("augmentation.mirror.axes." .. k, a, ("axes are 0-based spatial axes below %d"):format(n))
        end
      end
    end
  end
end

--- The mirror axes of a trainer table for a patch of dim (2 or 3) spatial axes: nil (nnU-Net's default), or a list.
function M.mirror_axes(tr, dim)
  local m = tr.augmentation and tr.augmentation.mirror
  local axes = m and m.axes
  if tr.augmentation and tr.augmentation.enabled == false then return {} end
  if axes == nil or axes == "auto" then return nil end
  if axes == "none" then return {} end
  local list = axes[dim == 2 and "2d" or "3d"]
  if list == nil then return nil end
  local out = {}
  for i, a in ipairs(list) do out[i] = a end
  return out
end

--- The effective trainer table (rules' trainer + augmentation, trainer-file overrides, then explicit options).
--- Unknown keys, at any depth, are errors naming the file and the key.
function M.settings(rules, overrides, file)
  local tr = deep_copy(rules.trainer)
  tr.augmentation = deep_copy(rules.augmentation)
  if overrides then
    check_keys(tr, overrides, "", file)
    merge(tr, overrides, "trainer", file)
  end
  check_values(tr, file)
  return tr
end

function M.poly_lr(tr, epoch)
  return tr.initial_lr * (1 - epoch / tr.num_epochs) ^ tr.poly_exponent
end

--- The learning rate of an epoch under the trainer's lr_schedule: "poly" (PolyLRScheduler), "cosine"
--- (nnUNetTrainerCosAnneal: torch's CosineAnnealingLR(T_max = num_epochs, eta_min = 0).step(epoch), closed form) or
--- "warmup_poly" (nnUNetTrainer_warmup: linear warm-up over warmup_epochs, then poly over the rest).
function M.lr(tr, epoch)
  if tr.lr_schedule == "cosine" then
    return tr.initial_lr * (1 + math.cos(math.pi * epoch / tr.num_epochs)) / 2
  elseif tr.lr_schedule == "warmup_poly" then
    -- nnunetv2/training/lr_scheduler/warmup.py: Lin_incr_LRScheduler, then PolyLRScheduler_offset
    local w = tr.warmup_epochs
    if epoch < w then return tr.initial_lr / w * (1 + epoch) end
    return tr.initial_lr * (1 - (epoch - w) / (tr.num_epochs - w)) ^ tr.poly_exponent
  end
  return M.poly_lr(tr, epoch)
end

-- ------------------------------------------------------------------------------------------------ helpers
local function wall_clock()
  -- os.time() has whole seconds: take the sub-second wall time once from date(1) when it has %N
  local w0, m0 = os.time(), clock.now()
  local p = io.popen("date +%s.%N 2>/dev/null")
  if p then
    local v = tonumber(p:read("a"):match("^%s*([%d%.]+)"))
    p:close()
    if v and math.abs(v - w0) < 2 then w0, m0 = v, clock.now() end
  end
  return function() return w0 + (clock.now() - m0) end
end



local function round(x, d)
  if x ~= x then return x end
  local m = 10 ^ d
  return math.floor(x * m + 0.5) / m
end

local function pyfloat(x)
  if x ~= x then return "nan" end
  return json.float_repr(x + 0.0)
end

-- Lunet's former checkpoints (LUNETCKP) carried NaN/inf as strings in their cjson header; today's keep the floats
-- (pickled, and in the `lunet` key as lunet.util.json writes them), which this leaves as they are.
local function unsanitize(v)
  if v == "NaN" then return NAN elseif v == "Infinity" then return math.huge elseif v == "-Infinity" then return -math.huge end
  if type(v) == "table" then
    local o = {}
    for k, x in pairs(v) do o[k] = unsanitize(x) end
    return o
  end
  return v
end

-- ------------------------------------------------------------------------------------------------ log file
local Logger = {}
Logger.__index = Logger

local function new_logger(folder, quiet)
  local d = os.date("*t")
  local name = string.format("training_log_%d_%d_%d_%02d_%02d_%02d.txt", d.year, d.month, d.day, d.hour, d.min, d.sec)
  local path = paths.join(folder, name)
  local f, err = io.open(path, "a")
  if not f then error(("cannot open the training log: %s"):format(tostring(err)), 0) end
  return setmetatable({ path = path, f = f, quiet = quiet, wall = wall_clock() }, Logger)
end

-- A failed write to the log (disk full, quota) must not pass unseen: it is reported on stderr, once, with the OS
-- error; training goes on (the checkpoints report their own failures).
local function log_write_failed(self, err)
  if self.write_failed then return end
  self.write_failed = true
  io.stderr:write(("lunet train: ERROR: cannot write the training log %s: %s (the lines from here on are only on " ..
    "the terminal)\n"):format(self.path, tostring(err)))
  io.stderr:flush()
end

--- nnU-Net's print_to_log_file: "<datetime>: <args joined by spaces>".
function Logger:print(...)
  local parts = table.pack(...)
  for i = 1, parts.n do parts[i] = tostring(parts[i]) end
  local t = self.wall()
  local frac = t - math.floor(t)
  local stamp = os.date("%Y-%m-%d %H:%M:%S", math.floor(t)) .. string.format(".%06d", math.floor(frac * 1e6))
  local line = table.concat(parts, " ", 1, parts.n)
  if self.f then
    local ok, err = self.f:write(stamp, ": ", line, "\n")
    if ok then ok, err = self.f:flush() end
    if not ok then log_write_failed(self, err) end
  end
  if not self.quiet or self.write_failed then io.stdout:write(stamp, ": ", line, "\n"); io.stdout:flush() end
end

--- An error line: to the log and always to stderr (also with -q).
function Logger:error(msg)
  self:print("ERROR: " .. msg)
  io.stderr:write("lunet train: ERROR: ", msg, "\n")
  io.stderr:flush()
end

function Logger:close() if self.f then self.f:close(); self.f = nil end end

-- Ranks other than 0 of a data-parallel run write no log (nnU-Net: only local_rank 0 prints to the log file).
local function null_logger()
  return setmetatable({ wall = wall_clock(), print = function() end, close = function() end }, Logger)
end

-- ------------------------------------------------------------------------------------------------ progress bar
local function progress(enabled, label, total)
  local t0 = clock.now()
  local last = -1
  return function(done, extra)
    if not enabled then return end
    local now = clock.now()
    if done < total and now - last < 0.2 then return end
    last = now
    local el = now - t0
    local rate = el > 0 and done / el or 0
    local eta = rate > 0 and (total - done) / rate or 0
    local w = 30
    local fill = total > 0 and math.floor(w * done / total) or w
    io.stderr:write(string.format("\r%s [%s%s] %d/%d %.2f it/s  %s<%s %s ", label, string.rep("#", fill),
      string.rep(".", w - fill), done, total, rate, term.fmt_duration(el), done > 0 and term.fmt_duration(eta) or "--:--", extra or ""))
    if done >= total then io.stderr:write("\n") end
    io.stderr:flush()
  end
end

-- ------------------------------------------------------------------------------------------------ batches
--- The dtype a batch's target travels to the device in: uint8 when every label value (and the ignore label) fits,
--- so the upload is a quarter of int32's; region masks are 0/1. The augmentation has already turned -1 into 0.
local function target_dtype(info)
  local top = info.ignore_label or 0
  for _, l in ipairs(info.all_labels or {}) do if l > top then top = l end end
  return (top <= 255) and "u8" or "i32"
end

local function to_net(batch, dim, tdtype)
  local d, s = batch.data, batch.regions or batch.seg -- regions: (B, R[+1], ...) masks (lunet.sampler)
  local B, C = d.shape[1], d.shape[2]
  local x, y
  tdtype = tdtype or "i32"
  if dim == 2 then
    x = d:reshape({ B, C, d.shape[4], d.shape[5] })
    y = s:astype(tdtype):reshape({ B, s.shape[2], s.shape[4], s.shape[5] })
  else
    x, y = d, s:astype(tdtype)
  end
  return x, y
end

--- TP/FP/FN per foreground class of a batch (nnUNetTrainer.validation_step).
local function confusion(logits, target, fg_labels, ignore_label)
  local B, C = logits.shape[1], logits.shape[2]
  local per = logits:numel() // B
  local vox = per // C
  local raw = logits:bytes()
  local segs = {}
  local sshape = { C }
  for i = 3, #logits.shape do sshape[#sshape + 1] = logits.shape[i] end
  for b = 0, B - 1 do
    local t = core.from_bytes(raw:sub(b * per * 4 + 1, (b + 1) * per * 4), sshape, "f32")
    local seg = core.eval.probs_to_seg(t)
    segs[b + 1] = seg:astype("i32"):bytes()
  end
  local pred = core.from_bytes(table.concat(segs), { B * vox }, "i32")
  local ref = target:reshape({ B * vox })
  return core.eval.confusion(ref, pred, fg_labels, { ignore_label = ignore_label, threads = 2 })
end

--- TP/FP/FN per region (sigmoid > 0.5; the ignore mask is the target's last channel).
local function region_confusion(logits, target, ignore_label)
  return core.regions.confusion(logits, target, ignore_label ~= nil)
end

M._confusion, M._to_net, M._region_confusion, M._target_dtype = confusion, to_net, region_confusion, target_dtype

--- Whether net is a lunet.net whose core lives on a device (not one of the specs' fakes): only such a network can
--- run a step on a worker thread or stage batches.
local function on_device_net(net)
  local c = net.core
  return type(c) == "userdata" and getmetatable(c) == debug.getregistry()["lunet.Net"] and net.cfg ~= nil and
    net.cfg.device ~= nil and net.cfg.device ~= false
end

--- A training step started on a worker thread (lunet.core.async) when the network is a lunet.net with a device
--- and prefetching is on: returns a function that waits for the step and returns its loss and the step's own
--- seconds. Otherwise the step runs now. While the step runs, only host work (the next batch) may happen.
local function start_step(net, batch, prefetch)
  local c = net.core
  if prefetch and core.async and type(net.train_opts) == "function" and on_device_net(net) then
    local job = core.async.train_step(c, batch.data, batch.target, net:train_opts(batch), batch.slot)
    return function()
      local l, _, secs = job:wait()
      return l, secs
    end
  end
  local t0 = clock.now()
  local l = net:train_step(batch)
  local secs = clock.now() - t0
  return function() return l, secs end
end
M._start_step = start_step

--- The step of a data-parallel run (lunet.dist, size > 1): forward and backward on this rank's share of the
--- global batch, the gradient buffer averaged over the ranks (MPI allreduce), then clipping and SGD on the
--- averaged gradient, the same on every rank. Returns the loss averaged over the ranks (nnU-Net all-gathers
--- the losses for its log), the step's seconds and the allreduce's seconds.
--- With prefetch (a lunet.net on a device, MPI callable from a worker thread), the forward and backward run on a
--- worker thread (core.async.train_grad) while the caller prepares the next batch, as the single-process step;
--- the returned function then waits and does the allreduce and the update. Same results either way.
local function dist_step(net, batch, prefetch)
  local opts = net:train_opts(batch)
  opts.dist_batch_dice = true -- the batch Dice's sums over the global batch, as nnU-Net's DDP all-gather
  local c = net.core
  local job, l, t0, secs = nil, nil, clock.now(), 0
  if prefetch and core.async and core.async.train_grad and core.dist.thread_ok() and on_device_net(net) then
    job = core.async.train_grad(c, batch.data, batch.target, opts)
  else
    l = c:train_grad(batch.data, batch.target, opts)
    secs = clock.now() - t0
  end
  return function()
    if job then
      local _
      l, _, secs = job:wait()
    end
    local t1 = clock.now()
    local t_ar = dist.allreduce_grads(net)
    c:train_update(opts)
    l = dist.mean(l)
    return l, secs + clock.now() - t1, t_ar
  end
end
M._dist_step = dist_step

-- ------------------------------------------------------------------------------------------------ the trainer
local function resolve_plans(o)
  local ds_name = paths.dataset_name(o.dataset)
  local pre = paths.preprocessed_dataset(ds_name)
  local planner = require "lunet.planner"
  local plans, plans_path
  if type(o.plans) == "table" then plans = o.plans
  else
    local p = o.plans or "nnUNetPlans"
    plans_path = (p:match("%.json$") and p) or paths.join(pre, p .. ".json")
    if not paths.isfile(plans_path) then
      error(("plans file %s not found: run lunet plan_and_preprocess -d %s first"):format(plans_path, ds_name), 0)
    end
    plans = planner.read(plans_path)
  end
  local cfg_name = o.configuration
  local ok, cfg = pcall(planner.configuration, plans, cfg_name)
  if not ok or not cfg then
    local names = {}
    for k in pairs(plans.configurations or {}) do names[#names + 1] = k end
    table.sort(names)
    error(("configuration '%s' is not in the plans %s (has: %s)"):format(tostring(cfg_name),
      plans_path or plans.plans_name or "?", table.concat(names, ", ")), 0)
  end
  return ds_name, pre, plans, plans_path, cfg_name, cfg
end

--- The folder of the configuration's preprocessed cases: <data_identifier>/lunet/, or, for a folder that
--- `lunet preprocess` wrote before the cases moved into lunet/ and has not run on since, <data_identifier>/.
function M.case_dir(pre, data_identifier)
  local dir = paths.case_store_dir(pre, data_identifier)
  if not paths.isdir(dir) then
    local old = paths.join(pre, data_identifier)
    for _, n in ipairs(paths.isdir(old) and paths.listdir(old) or {}) do
      if n:match("%.lcs$") then return old end
    end
  end
  return dir
end

local function list_cases(dir)
  if not paths.isdir(dir) then
    error(("preprocessed data %s not found: run lunet preprocess for this configuration first"):format(dir), 0)
  end
  local ids = {}
  for _, n in ipairs(paths.listdir(dir)) do
    local id = n:match("^(.*)%.lcs$")
    if id then ids[#ids + 1] = id end
  end
  if #ids == 0 then error(dir .. ": no preprocessed cases (.lcs)", 0) end
  return ids
end

local function checkpoint_meta(st, extra)
  local m = {
    current_epoch = st.epoch, iteration = st.iter, epoch_losses = st.partial, epoch_start = st.epoch_start,
    logging = st.log, best_ema = st.best_ema, train_loader = st.loader:state(), val_loader = st.val_loader:state(),
    trainer_name = st.trainer_name, fold = st.fold, configuration = st.cfg_name, seed = st.seed,
    inference_allowed_mirroring_axes = st.mirror_axes, trainer = st.tr,
    -- the optimizer's lr at this point (the epoch in progress, else the last one run), under the trainer's schedule
    lr = M.lr(st.tr, st.iter > 0 and st.epoch or math.max(st.epoch - 1, 0)),
  }
  if dist.size() > 1 then m.world_size = dist.size() end
  for k, v in pairs(extra or {}) do m[k] = v end
  return m
end

-- Test-only fault injection (spec/trainer_write_errors_spec.lua): LUNET_TEST_FAIL_WRITE=<Lua pattern> makes the
-- checkpoint and progress.png writes whose file name matches it fail as a full disk does (ENOSPC), before anything
-- is written. Never set it outside tests.
local function injected_failure(path)
  local pat = os.getenv("LUNET_TEST_FAIL_WRITE")
  if pat and pat ~= "" and paths.basename(path):find(pat) then
    error(("%s: write failed: No space left on device (errno 28, injected by LUNET_TEST_FAIL_WRITE)"):format(path), 0)
  end
end
M._injected_failure = injected_failure

--- Writes a checkpoint. A failed write (disk full, quota, I/O error) stops training: the log and stderr get the
--- file, the OS error and the state of the previous checkpoint (checkpoints are written to a temporary name and
--- renamed, so the one already there is never touched by a failed write).
local function save_checkpoint(st, name, extra)
  local path = paths.join(st.folder, name)
  if not dist.is_main() then return path end -- rank 0 writes every file of a data-parallel run
  if st.disable_checkpointing then
    st.logger:print("No checkpoint written, checkpointing is disabled")
    return path
  end
  local existed = paths.isfile(path)
  local ok, err = pcall(function()
    injected_failure(path)
    st.net:save(path, checkpoint_meta(st, extra))
  end)
  if not ok then
    local msg = ("cannot write the checkpoint %s: %s; %s. Training stopped at epoch %d: free some space and resume " ..
      "with --continue"):format(path, tostring(err), existed and ("the previous " .. name .. " is intact (a " ..
      "failed write never replaces it)") or ("there was no earlier " .. name .. "; the other checkpoints in " ..
      st.folder .. " are untouched"), st.epoch)
    st.logger:error(msg)
    st.logger:close()
    error(msg, 0)
  end
  return path
end

local function new_log()
  return { mean_fg_dice = {}, ema_fg_dice = {}, dice_per_class_or_region = {}, train_losses = {}, val_losses = {},
           lrs = {}, epoch_start_timestamps = {}, epoch_end_timestamps = {} }
end

local function restore(st, path, opts)
  local meta = unsanitize(st.net:load(path, opts))
  st.epoch = math.tointeger(meta.current_epoch or 0)
  st.iter = math.tointeger(meta.iteration or 0)
  st.partial = meta.epoch_losses or {}
  st.epoch_start = meta.epoch_start
  st.log = meta.logging or new_log()
  for k, v in pairs(new_log()) do if st.log[k] == nil then st.log[k] = v end end
  st.best_ema = meta.best_ema
  -- JSON numbers come back as floats: counters must be integers again
  if meta.train_loader then st.loader:set_state({ counter = math.tointeger(meta.train_loader.counter) }) end
  if meta.val_loader then st.val_loader:set_state({ counter = math.tointeger(meta.val_loader.counter) }) end
  local ws = math.tointeger(meta.world_size or 1) or 1
  if ws ~= dist.size() then
    st.logger:print(("WARNING: %s was written by a run on %d rank(s), this run has %d: training continues, but the " ..
      "batches differ from the uninterrupted run's (continue on %d rank(s) to resume exactly)"):format(
      paths.basename(path), ws, dist.size(), ws))
  end
  return meta
end

--- The configurations that train on this one's validation (next_stage: a name or a list), each with its folder
--- <model>/predicted_next_stage/<name>/ (created, as nnU-Net does before the first case) and its preprocessed cases.
local function next_stages_of(st, cfg)
  local ns = cfg.next_stage
  if ns == nil or ns == json.null then return {} end
  if type(ns) == "string" then ns = { ns } end
  local planner = require "lunet.planner"
  local out = {}
  for _, n in ipairs(ns) do
    local ncfg = planner.configuration(st.plans, n)
    local folder = paths.join(st.model_dir, "predicted_next_stage", n)
    if dist.is_main() then paths.mkdirs(folder) end
    out[#out + 1] = { name = n, folder = folder, data_dir = M.case_dir(st.pre, ncfg.data_identifier) }
  end
  return out
end

--- nnUNetTrainer.perform_actual_validation's export for the next stages: the logits resampled to the next stage's
--- preprocessed shape, argmax, <model>/predicted_next_stage/<next>/<case>.npz ("seg", as nnUNetDatasetNumpy.save_seg;
--- nnU-Net's default Blosc2 dataset writes .b2nd, which Lunet reads (lunet.cascade.read_seg) but does not write).
--- A next stage whose case is not preprocessed is skipped with nnU-Net's log line.
local function write_next_stages(st, next_stages, id, logits, props)
  if #next_stages == 0 then return end
  local store = require "lunet.io.store"
  local predict = require "lunet.predict"
  local cascade = require "lunet.cascade"
  for _, n in ipairs(next_stages) do
    local p = paths.join(n.data_dir, id .. ".lcs")
    if not paths.isfile(p) then
      st.logger:print(("Predicting next stage %s failed for case %s because the preprocessed file is missing! Run " ..
        "the preprocessing for this configuration first!"):format(n.name, id))
    else
      local c = store.open(p, { no_locations = true })
      local target = c.shape
      c:close()
      local seg = predict.resample_to_seg(logits, target, props, st.plans, st.cfg_name, st.info,
        { threads = st.threads })
      cascade.write_seg(paths.join(n.folder, id .. ".npz"), seg)
      seg:free()
    end
  end
end

--- Final validation of the fold's cases (nnUNetTrainer.perform_actual_validation): sliding-window prediction
--- (lunet.predict) of each validation case's preprocessed data, exported to the original geometry into
--- validation/ (with --npz the probabilities), then lunet.evaluate against gt_segmentations ->
--- validation/summary.json.
local function final_validation(st)
  local okp, predict = pcall(require, "lunet.predict")
  if not okp or type(predict.sliding_window) ~= "function" or type(predict.export) ~= "function" then
    st.logger:print("Final validation skipped: lunet.predict is not available")
    return nil
  end
  local image = require "lunet.io.image"
  local store = require "lunet.io.store"
  local vdir = paths.join(st.folder, "validation")
  paths.mkdirs(vdir)
  local ending = st.dataset_json.file_ending
  local gt = paths.join(st.pre, "gt_segmentations")
  local net = st.net
  local model = { forward = function(x) return net:forward(x)[1] end, mirror_axes = st.mirror_axes }
  local cfg = require("lunet.planner").configuration(st.plans, st.cfg_name)
  -- data-parallel: rank r predicts cases r+1, r+1+N, ... (nnU-Net: val_keys[rank::world_size]), then rank 0
  -- evaluates the folder once every rank has written its share
  local ids, D = st.val_ids, dist.size()
  if D > 1 then
    ids = {}
    for i = dist.rank() + 1, #st.val_ids, D do ids[#ids + 1] = st.val_ids[i] end
  end
  local next_stages = next_stages_of(st, cfg)
  local okl, lerr = pcall(function()
    for i, id in ipairs(ids) do
      local c = store.open(paths.join(st.data_dir, id .. ".lcs"))
      local data = c:read_patch({ 0, 0, 0 }, c.shape)
      if st.prev_folder then
        -- the cascade's input: the previous stage's one-hot appended, as in training and inference
        local cascade = require "lunet.cascade"
        local file = cascade.seg_file(st.prev_folder, id)
        if not file then
          error(("%s: the previous stage's prediction of validation case '%s' is missing"):format(
            paths.join(st.prev_folder, id .. ".npz"), id), 0)
        end
        local w = cascade.with_prev_seg(c, file, st.prev_cache)
        local d2 = core.infer.onehot_append(data, w.prev_seg(), st.info.foreground_labels)
        data:free()
        data = d2
      end
      local logits = predict.sliding_window({ model }, data, { patch = cfg.patch_size, step_size = 0.5,
        mirror_axes = st.mirror_axes, threads = st.threads })
      write_next_stages(st, next_stages, id, logits, c.properties)
      local seg, probs = predict.export(logits, c.properties, st.plans, st.cfg_name, st.info,
        { probabilities = st.npz, threads = st.threads })
      c:close()
      local like = paths.isfile(paths.join(gt, id .. ending)) and image.read(paths.join(gt, id .. ending)) or nil
      image.write_seg(paths.join(vdir, id .. ending), seg, like)
      if st.npz and probs then
        core.npz.write(paths.join(vdir, id .. ".npz"), { probabilities = probs }, { level = 1 }) -- atomic in C
        -- the case properties as preprocessing wrote them (nnU-Net writes a .pkl next to the .npz)
        fs.copy_atomic(paths.join(st.data_dir, id .. ".json"), paths.join(vdir, id .. ".json"))
      end
      if st.show then io.stderr:write(("\rvalidation %d/%d %s "):format(i, #ids, id)); io.stderr:flush() end
      collectgarbage()
    end
  end)
  if D > 1 then dist.barrier() end -- every rank arrives here exactly once, also after a failed prediction
  if not okl then error(lerr, 0) end
  if not dist.is_main() then return nil end
  if st.show then io.stderr:write("\n") end
  local evaluate = require "lunet.evaluate"
  local summary = evaluate.folder(gt, vdir, { dataset_json = paths.join(st.pre, "dataset.json"),
    output_file = paths.join(vdir, "summary.json"), chill = true })
  local fg = summary.foreground_mean and summary.foreground_mean.Dice
  st.logger:print("Validation complete")
  st.logger:print("Mean Validation Dice: ", pyfloat(fg or NAN))
  return summary
end

-- ------------------------------------------------------------------------------------------------ train, in steps
-- train = check_options -> resolve_run (nothing written) -> set_up (results folder, log, loaders, network, resume,
-- debug.json) -> run_epochs (train_iterations, validation_iterations, end_epoch per epoch) -> finish (final
-- checkpoint, final_validation). nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: run_training has the same order.

local function check_fold(o)
  local fold = o.fold == nil and 0 or o.fold
  if fold ~= "all" then
    fold = math.tointeger(tonumber(fold))
    if not fold or fold < 0 then error(("trainer.train: fold must be 0..4 or \"all\", got %s"):format(tostring(o.fold)), 3) end
  end
  return fold
end

--- The rule set whose trainer and augmentation tables the run starts from: o.rules is a preset name, the path of
--- a planning rule file or a table (lunet.planner.load_rules); nil: rules/default.lua. Unknown trainer keys in the
--- rule file's trainer block are errors, as in trainer files.
function M.rules_of(spec)
  local default = require "lunet.rules.default"
  if spec == nil then return default end
  local rules = require("lunet.planner").load_rules(spec)
  local label = type(spec) == "string" and spec or "(table)"
  check_keys(default.trainer, rules.trainer or {}, "", label, "rule file")
  check_keys(default.augmentation, rules.augmentation or {}, "augmentation", label, "rule file")
  return rules
end

--- Everything the run is, from the options, the plans, the trainer file and dataset.json; writes nothing.
local function resolve_run(o, fold)
  local ds_name, pre, plans, plans_path, cfg_name, cfg = resolve_plans(o)
  local rules = M.rules_of(o.rules)
  local overrides, trainer_name, source = nil, rules.trainer.name or "nnUNetTrainer", nil
  local spec = o.trainer or o.trainer_file
  if spec then overrides, trainer_name, source = M.find_trainer(spec) end
  local tr = M.settings(rules, overrides, source)
  tr.name = trainer_name
  if o.epochs then tr.num_epochs = o.epochs end
  if o.iterations then tr.num_iterations_per_epoch = o.iterations end
  if o.val_iterations then tr.num_val_iterations_per_epoch = o.val_iterations end
  if tr.probabilistic_oversampling == "match_fixed" then
    -- nnUNetTrainer_probabilisticOversampling.__init__: the share of samples the fixed scheme forces
    local B, n = cfg.batch_size, 0
    for j = 0, B - 1 do if core.sampler.force_fg(B, tr.oversample_foreground_percent, j) then n = n + 1 end end
    tr.oversample_foreground_percent = n / B
  end

  local dj = json.read(paths.join(pre, "dataset.json"))
  local info = require("lunet.labels").of_dataset_json(dj)
  local nin = 0
  for _ in pairs(dj.channel_names or dj.modality or {}) do nin = nin + 1 end
  -- cascade (nnUNetTrainer.__init__: is_cascaded, folder_with_segs_from_previous_stage): the previous stage's
  -- predictions of the same trainer and plans, one-hot of the foreground labels appended to the input channels
  local prev_stage, prev_folder = cfg.previous_stage, nil
  if prev_stage == json.null then prev_stage = nil end
  if prev_stage then
    nin = nin + #info.foreground_labels
    local cascade = require "lunet.cascade"
    prev_folder = cascade.prev_stage_folder(ds_name, trainer_name, plans.plans_name, prev_stage, cfg_name)
    cascade.check_folder(prev_folder, {}, cfg_name, prev_stage)
  end
  return {
    prev_stage = prev_stage, prev_folder = prev_folder,
    ds_name = ds_name, pre = pre, plans = plans, plans_path = plans_path, cfg_name = cfg_name, cfg = cfg,
    fold = fold, tr = tr, trainer_name = trainer_name, trainer_source = source, rules_name = rules.name, seed = o.seed or 0, threads = o.threads or 2,
    dj = dj, info = info, nin = nin, nout = info.num_segmentation_heads,
    ds_labels = require("lunet.dataset").allowed_labels({ labels = info }),
    -- region-based training: sigmoid outputs, DC_and_BCE (nnUNetTrainer._build_loss)
    regions = info.has_regions or nil,
  }
end

--- The results folder and its copies of plans, dataset.json and the fingerprint (nnUNetTrainer.on_train_start).
local function fold_folder(r)
  local model_dir = paths.output_folder(r.ds_name, r.trainer_name, r.plans.plans_name, r.cfg_name)
  return model_dir, paths.join(model_dir, "fold_" .. tostring(r.fold))
end

--- The lock of the fold folder (created), held for the whole run: two trainings of one fold would both finish,
--- leaving checkpoint_best of one and checkpoint_final of the other.
local function lock_fold(r)
  if not dist.is_main() then return nil end
  local _, folder = fold_folder(r)
  paths.mkdirs(folder)
  local lock = core.lock.acquire(folder, "fold folder")
  -- a killed run's half-written files (progress.png.tmp-XXXXXX, ...): nobody else writes here now
  require("lunet.util.fs").remove_temp_files(folder)
  return lock
end

local function write_model_folder(r)
  local model_dir, folder = fold_folder(r)
  if not dist.is_main() then return model_dir, folder end
  paths.mkdirs(folder)
  if r.plans_path then fs.copy_atomic(r.plans_path, paths.join(model_dir, "plans.json"))
  else (require "lunet.planner").write(r.plans, paths.join(model_dir, "plans.json")) end
  fs.copy_atomic(paths.join(r.pre, "dataset.json"), paths.join(model_dir, "dataset.json"))
  if paths.isfile(paths.join(r.pre, "dataset_fingerprint.json")) then
    fs.copy_atomic(paths.join(r.pre, "dataset_fingerprint.json"), paths.join(model_dir, "dataset_fingerprint.json"))
  end
  return model_dir, folder
end

--- The check of every patch the loaders read (data preprocessed before preprocessing refused bad values, or by
--- other tools): NaN/Inf voxels, label values outside dataset.json's labels. Cheap: one pass over the patch.
--- allowed: the dataset's label values (lunet.dataset.allowed_labels); -1 marks voxels outside the nonzero mask.
local function patch_check(data_dir, allowed)
  local values = core.values
  local with_outside, desc = { -1 }, {}
  for i, v in ipairs(allowed or {}) do with_outside[#with_outside + 1] = v; desc[i] = tostring(v) end
  desc = "{" .. table.concat(desc, ", ") .. "}"
  local function where(c) return ("%s: %s"):format(c.key, paths.join(data_dir, c.key .. ".lcs")) end
  local advice = "; the raw case holds bad values: fix it, then preprocess again (lunet verify DATASET lists " ..
    "every such problem)"
  return function(c, data, seg)
    local f = values.finite(data)
    if f then
      error(("%s (preprocessed) holds a non-finite voxel (%s) (%d in the sampled patch)%s"):format(where(c),
        tostring(f.value):gsub("^%-?nan$", "nan"), f.count, advice), 0)
    end
    if seg then
      f = values.labels(seg, allowed and with_outside or nil)
      if f then
        local what = f.problem == "not_allowed" and ("label %s, not in dataset.json's labels %s"):format(
          math.tointeger(f.value) or f.value, desc) or ("a non-integer label %s"):format(f.value)
        error(("%s (preprocessed) holds %s (%d voxel(s) in the sampled patch)%s"):format(where(c), what, f.count,
          advice), 0)
      end
    end
  end
end

--- The fold's cases (splits_final.json, created when missing) and the training and validation loaders.
--- Returns the training and validation ids and the augmentation's configuration.
local function open_loaders(st, r)
  local logger = st.logger
  local ids = list_cases(st.data_dir)
  local splits = require "lunet.splits"
  local s, created
  if dist.is_main() then s, created = splits.load_or_create(r.pre, ids); dist.barrier()
  else dist.barrier(); s, created = splits.load_or_create(r.pre, ids) end
  if created then logger:print("Creating new 5-fold cross-validation split...") end
  local train_ids, val_ids, note = splits.fold(s, ids, r.fold)
  if note then logger:print("WARNING: " .. note) end
  logger:print(("This split has %d training and %d validation cases."):format(#train_ids, #val_ids))
  local store = require "lunet.io.store"
  local cascade, prev_cache = nil, nil
  if r.prev_folder then
    -- every case of the fold needs its previous-stage prediction: refuse before the first epoch, naming the file
    cascade = require "lunet.cascade"
    local all = {}
    for _, id in ipairs(train_ids) do all[#all + 1] = id end
    for _, id in ipairs(val_ids) do all[#all + 1] = id end
    cascade.check_folder(r.prev_folder, all, r.cfg_name, r.prev_stage)
    prev_cache = cascade.seg_cache()
    st.prev_cache = prev_cache
    logger:print(("Cascade: previous stage %s's predictions from %s"):format(r.prev_stage, r.prev_folder))
  end
  local function open_cases(list)
    local out = {}
    for i, id in ipairs(list) do
      local p = paths.join(st.data_dir, id .. ".lcs")
      if not paths.isfile(p) then error(("%s: case '%s' of the split is not preprocessed"):format(p, id), 0) end
      local c = store.open(p)
      c.key = id
      if cascade then
        c = cascade.with_prev_seg(c, cascade.seg_file(r.prev_folder, id), prev_cache)
        c.key = id
      end
      out[i] = c
    end
    return out
  end

  local sampler = require "lunet.sampler"
  local augment = require "lunet.augment"
  local cfg, tr, info = r.cfg, r.tr, r.info
  local mask_channels
  if type(cfg.use_mask_for_norm) == "table" then
    mask_channels = {}
    for i, v in ipairs(cfg.use_mask_for_norm) do if v == true then mask_channels[#mask_channels + 1] = i end end
  end
  -- data-parallel: this rank's share of the global batch and of its forced-foreground positions
  -- (nnUNetTrainer._set_batch_size_and_oversample), and its own batch streams (rank 0's are the single-process ones)
  local batch_size, oversample = dist.split_batch(cfg.batch_size, tr.oversample_foreground_percent)
  st.batch_size, st.oversample = batch_size, oversample
  local loader_opts = {
    patch_size = cfg.patch_size, batch_size = batch_size, oversample = oversample,
    seed = r.seed, augmentation = tr.augmentation, has_ignore = info.ignore_label ~= nil, threads = r.threads,
    mask_channels = mask_channels, regions = info.has_regions and info.regions or nil,
    ignore_label = info.has_regions and info.ignore_label or nil,
  }
  loader_opts.check = patch_check(st.data_dir, r.ds_labels)
  if cascade then loader_opts.cascade = { labels = info.foreground_labels } end
  -- trainer variants: mirror axes (nnUNetTrainerNoMirroring, _onlyMirror01), no augmentation (nnUNetTrainerNoDA),
  -- probabilistic oversampling (nnUNetTrainer_probabilisticOversampling)
  local mirror_axes = M.mirror_axes(tr, #cfg.patch_size)
  local augment_on = tr.augmentation.enabled ~= false
  loader_opts.mirror_axes = mirror_axes
  loader_opts.probabilistic = tr.probabilistic_oversampling ~= false
  if loader_opts.probabilistic then
    logger:print(("Probabilistic foreground oversampling: %s"):format(pyfloat(tr.oversample_foreground_percent)))
  end
  local lo = deep_copy(loader_opts); lo.cases = open_cases(train_ids)
  -- no augmentation: nnU-Net's validation transforms on patches sampled at the final size, the training stream
  if not augment_on then lo.validation, lo.stream = true, 0 end
  if dist.size() > 1 then lo.stream = 2 * dist.rank() end
  st.loader = sampler.new(lo)
  local vo = deep_copy(loader_opts); vo.cases = open_cases(#val_ids > 0 and val_ids or train_ids); vo.validation = true
  if dist.size() > 1 then vo.stream = 2 * dist.rank() + 1 end
  st.val_loader = sampler.new(vo)
  local acfg = augment.configure(cfg.patch_size, tr.augmentation, { mirror_axes = mirror_axes })
  if not augment_on then acfg.initial_patch = acfg.final_patch end
  st.mirror_axes = json.array(deep_copy(acfg.mirror_axes))
  return train_ids, val_ids, acfg
end

--- --val-only loads checkpoint_final; --continue the first of final, latest, best (nnUNetTrainer.load_checkpoint
--- as nnunetv2/run/run_training.py: maybe_load_checkpoint picks it).
local function resume(st, o)
  local function ck(name) return paths.join(st.folder, name) end
  if o.val_only then
    if not paths.isfile(ck("checkpoint_final.pth")) then
      error(ck("checkpoint_final.pth") .. ": not found; --val-only needs a finished training", 0)
    end
    restore(st, ck("checkpoint_final.pth"), { momentum = false }) -- validation only: no optimiser buffer
  elseif o.continue then
    -- a checkpoint that fails its checksums or does not fit the network is reported and the next one in
    -- nnU-Net's order is tried; each load sets every weight, so a failed one leaves nothing behind
    local found, failed = nil, {}
    for _, n in ipairs({ "checkpoint_final.pth", "checkpoint_latest.pth", "checkpoint_best.pth" }) do
      if paths.isfile(ck(n)) then
        local ok, err = pcall(restore, st, ck(n))
        if ok then found = n; break end
        failed[#failed + 1] = n
        st.logger:print(("WARNING: cannot continue from %s: %s"):format(n, tostring(err)))
      end
    end
    if found then
      if #failed > 0 then
        st.logger:print(("Continuing from %s instead of %s"):format(found, table.concat(failed, ", ")))
      end
      st.logger:print(("Continuing from %s: epoch %d, iteration %d"):format(found, st.epoch, st.iter))
    elseif #failed > 0 then
      error(("%s: no usable checkpoint to continue from (%s unreadable, see the training log); move them " ..
        "away to start a new training"):format(st.folder, table.concat(failed, ", ")), 0)
    else
      st.logger:print("WARNING: cannot continue training because there seems to be no checkpoint available to " ..
        "continue from. Starting a new training...")
    end
  end
end

--- debug.json: the effective settings of the run.
local function write_debug_json(st, r, o, acfg, train_ids, val_ids)
  if not dist.is_main() then return end
  local cfg, tr, info = r.cfg, r.tr, r.info
  local dbg = {
    trainer_name = r.trainer_name, trainer_file = o.trainer or o.trainer_file or json.null, trainer = tr,
    trainer_source = r.trainer_source or json.null, rules = r.rules_name or json.null,
    dataset_name = r.ds_name, plans_name = r.plans.plans_name, configuration = r.cfg_name, fold = r.fold,
    seed = r.seed, device = o.device or json.null, threads = r.threads, batch_size = cfg.batch_size,
    patch_size = cfg.patch_size, initial_patch_size = acfg.initial_patch, do_dummy_2d_data_aug = acfg.dummy2d,
    rotation_range_rad = acfg.rotation, inference_allowed_mirroring_axes = st.mirror_axes,
    num_input_channels = r.nin, num_output_channels = r.nout, ignore_label = info.ignore_label or json.null,
    batch_dice = cfg.batch_dice and true or false, oversample_foreground_percent = tr.oversample_foreground_percent,
    num_train_cases = #train_ids, num_val_cases = #val_ids, lunet_version = require("lunet").version,
    continued = o.continue and true or false,
  }
  if dist.size() > 1 then
    -- per-rank shares, as nnU-Net prints them ("worker r batch_size", "worker r oversample")
    local per, ov = json.array {}, json.array {}
    for k = 0, dist.size() - 1 do per[k + 1], ov[k + 1] = dist.split_batch(cfg.batch_size, tr.oversample_foreground_percent, dist.size(), k) end
    dbg.world_size, dbg.batch_size_per_rank, dbg.oversample_per_rank = dist.size(), per, ov
  end
  json.write(paths.join(st.folder, "debug.json"), dbg)
end

--- The run's state: results folder, log file, loaders, network (restored when resuming); writes debug.json.
local function set_up(o, r)
  local model_dir, folder = write_model_folder(r)
  local show = o.progress
  local tty = false
  if show ~= false then tty = term.stderr_is_tty() end
  if show == nil then show = true end
  if not dist.is_main() then show = false end
  local st = {
    folder = folder, model_dir = model_dir, fold = r.fold, cfg_name = r.cfg_name, plans = r.plans, tr = r.tr,
    disable_checkpointing = o.disable_checkpointing and true or false,
    trainer_name = r.trainer_name, seed = r.seed, pre = r.pre,
    logger = dist.is_main() and new_logger(folder, o.quiet) or null_logger(),
    data_dir = M.case_dir(r.pre, r.cfg.data_identifier), npz = o.npz, threads = r.threads, dataset_json = r.dj,
    info = r.info, regions = r.regions, show = show, tty = tty, dim = #r.cfg.patch_size,
    prev_folder = r.prev_folder,
    epoch = 0, iter = 0, partial = {}, log = new_log(),
  }
  local train_ids, val_ids, acfg = open_loaders(st, r)
  st.val_ids = val_ids

  local factory = o.net or require("lunet.net").new
  st.net = factory(r.plans, r.cfg_name, r.nin, r.nout,
    { rules = { trainer = r.tr }, seed = r.seed + 12345, device = dist.device(o.device), dataset_json = r.dj })

  resume(st, o)
  if o.pretrained_weights and not o.continue and not o.val_only then
    -- nnunetv2/run/load_pretrained_weights.py: every weight but the segmentation heads, at the start only
    st.net:load_pretrained(o.pretrained_weights)
    st.logger:print("Loaded pretrained weights (all but the segmentation heads) from " .. o.pretrained_weights)
  end
  if dist.size() > 1 then
    -- as DDP at construction: every rank starts from rank 0's weights (and momentum)
    dist.bcast_params(st.net)
    local mb = dist.bucket_mb()
    local nb = dist.setup_buckets(st.net, mb)
    st.grad_buckets = nb
    st.logger:print(("Data-parallel training on %d ranks (MPI): global batch %d, this rank's batch %d, " ..
      "oversample %s, %s"):format(dist.size(), r.cfg.batch_size, st.batch_size, pyfloat(st.oversample),
      nb > 0 and ("gradient allreduce in %d bucket(s) of %g MB overlapping the backward"):format(nb, mb)
        or "gradient allreduce after the backward (LUNET_BUCKET_MB=0)"))
  end
  write_debug_json(st, r, o, acfg, train_ids, val_ids)
  -- the classes the pseudo Dice is reported for: foreground regions, or foreground labels
  st.fg = json.array {}
  for i, v in ipairs(r.info.has_regions and r.info.regions or r.info.foreground_labels) do st.fg[i] = v end
  return st
end

--- On a pending SIGINT/SIGTERM: saves checkpoint_latest.pth and returns the signal number, else nil.
-- The pending signal; in a data-parallel run the largest over the ranks, so every rank stops at the same step.
local function pending_signal()
  local sig = core.signal.pending()
  if dist.size() > 1 then
    sig = math.tointeger(dist.max(sig or 0))
    if sig == 0 then sig = nil end
  end
  return sig
end

local function interrupted(st, phase)
  local sig = pending_signal()
  if not sig then return nil end
  save_checkpoint(st, "checkpoint_latest.pth")
  st.logger:print(("Received signal %d during %s of epoch %d: saved checkpoint_latest.pth (iteration %d); " ..
    "resume with --continue"):format(sig, phase, st.epoch, st.iter))
  core.signal.clear()
  return sig
end

--- Whether batches are staged (net:stage): on GPUs, where the upload crosses a bus; LUNET_STAGING=1 forces it
--- (the specs on PoCL), 0 turns it off. Only a single process's lunet.net with a device stages (a data-parallel
--- step uploads in its own worker).
local function staging_wanted(net)
  local env = os.getenv("LUNET_STAGING")
  if env == "0" or dist.size() > 1 or not on_device_net(net) then return false end
  if env == "1" then return true end
  local d = core.devices()[net.core:device() + 1]
  return d ~= nil and d.type == "gpu"
end

--- The epoch's training steps from st.iter on (nnUNetTrainer.train_step). Returns the training wall time and the
--- part of it no step ran in; or nil, nil and the signal number when a signal stopped it.
local function train_iterations(st, lr, prefetch)
  local epoch, E, I = st.epoch, st.tr.num_epochs, st.tr.num_iterations_per_epoch
  local bar = progress(st.show and st.tty, ("epoch %d/%d"):format(epoch, E), I)
  -- waiting share: training wall time in which no step runs (batch preparation not hidden behind a step)
  local t_train0, t_step = clock.now(), 0
  -- batch k+1 is prepared while the device runs step k (prefetch); a prepared batch that a signal
  -- leaves unused is given back to the loader, so checkpoints keep the counter of the next unused batch
  local pending = nil
  local stage = prefetch and staging_wanted(st.net)
  if stage and not st.staging_noted then
    st.staging_noted = true
    st.logger:print("Batch uploads are staged on a transfer queue, two batches deep (LUNET_STAGING=0 turns it off)")
  end
  local tdtype = target_dtype(st.info)
  local function prepare()
    local x, y = to_net(st.loader:next_batch(), st.dim, tdtype)
    return x, y
  end
  while st.iter < I do
    if pending_signal() then -- the flag stays set until interrupted() clears it
      if pending then st.loader:set_state({ counter = st.loader:state().counter - 1 }); pending = nil end
      local sig = interrupted(st, "training")
      if sig then return nil, nil, sig end
    end
    local x, y, slot
    if pending then x, y, slot = pending[1], pending[2], pending.slot; pending = nil else x, y = prepare() end
    local batch = { data = x, target = y, lr = lr, ignore_label = st.info.ignore_label, regions = st.regions,
                    slot = slot }
    local wait
    if dist.size() > 1 then
      local finish_step = dist_step(st.net, batch, prefetch)
      wait = function()
        local l, secs, t_ar = finish_step()
        st.t_allreduce = (st.t_allreduce or 0) + t_ar
        return l, secs
      end
    else
      wait = start_step(st.net, batch, prefetch)
    end
    if prefetch and st.iter + 1 < I then
      local px, py = prepare()
      -- on a GPU the next batch's upload overlaps this step too (double-buffered staging, cl/staging.h)
      pending = { px, py, slot = stage and st.net.core:stage(px, py) or nil }
    end
    local l, secs = wait()
    t_step = t_step + secs
    if l ~= l or l == math.huge or l == -math.huge then
      -- the step already applied its NaN/Inf gradients: stop before any checkpoint is written from this state
      local msg = ("epoch %d iteration %d: the loss is %s; training stopped without saving (the checkpoints "
        .. "already written are intact). Likely causes: a learning rate too high for this data, or images with "
        .. "extreme values (lunet verify DATASET)"):format(st.epoch, st.iter, l ~= l and "nan" or tostring(l))
      st.logger:print("ERROR: " .. msg)
      st.logger:close()
      error(msg, 0)
    end
    st.iter = st.iter + 1
    st.partial[st.iter] = l
    bar(st.iter, ("loss %.4f"):format(l))
  end
  local t_train = clock.now() - t_train0
  return t_train, math.max(0, t_train - t_step)
end

--- The epoch's validation batches (nnUNetTrainer.validation_step / on_validation_epoch_end): mean loss, Dice per
--- foreground class or region from the summed TP/FP/FN (NaN where 0/0), and their nan-mean.
local function validation_iterations(st)
  local V, fg, info, net = st.tr.num_val_iterations_per_epoch, st.fg, st.info, st.net
  local vloss, tp, fp, fn = 0, {}, {}, {}
  for k = 1, #fg do tp[k], fp[k], fn[k] = 0, 0, 0 end
  local tdtype = target_dtype(st.info)
  for _ = 1, V do
    local b = st.val_loader:next_batch()
    local x, y = to_net(b, st.dim, tdtype)
    vloss = vloss + net:loss{ data = x, target = y, ignore_label = info.ignore_label, regions = st.regions }
    local outs = net:forward(x)
    local cm = st.regions and region_confusion(outs[1], y, info.ignore_label) or confusion(outs[1], y, fg, info.ignore_label)
    for k = 1, #fg do tp[k], fp[k], fn[k] = tp[k] + cm[k].TP, fp[k] + cm[k].FP, fn[k] + cm[k].FN end
  end
  if dist.size() > 1 then
    -- nnU-Net all-gathers TP/FP/FN and the losses of every rank (on_validation_epoch_end)
    local all = { vloss }
    for k = 1, #fg do all[#all + 1] = tp[k]; all[#all + 1] = fp[k]; all[#all + 1] = fn[k] end
    all = dist.sum(all)
    vloss = all[1] / dist.size()
    for k = 1, #fg do tp[k], fp[k], fn[k] = all[3 * k - 1], all[3 * k], all[3 * k + 1] end
  end
  vloss = V > 0 and vloss / V or NAN
  local dice, sum, cnt = json.array {}, 0, 0
  for k = 1, #fg do
    local den = 2 * tp[k] + fp[k] + fn[k]
    dice[k] = den > 0 and 2 * tp[k] / den or NAN
    if dice[k] == dice[k] then sum, cnt = sum + dice[k], cnt + 1 end
  end
  return vloss, dice, cnt > 0 and sum / cnt or NAN
end

--- nnUNetTrainer.on_epoch_end: the logging lists, the log lines, checkpoint_best (EMA pseudo Dice strictly
--- higher) and checkpoint_latest (every save_every epochs), progress.png, and the plain progress line.
local function end_epoch(st, lr, vloss, dice, mean, t_train, t_wait)
  local epoch, logger, tr = st.epoch, st.logger, st.tr
  local E, I = tr.num_epochs, tr.num_iterations_per_epoch
  local tl = 0
  for _, v in ipairs(st.partial) do tl = tl + v end
  tl = tl / math.max(1, #st.partial)
  local L = st.log
  local prev = L.ema_fg_dice[#L.ema_fg_dice]
  local ema = (prev == nil) and mean or (prev * 0.9 + 0.1 * mean)
  local e1 = epoch + 1
  L.mean_fg_dice[e1], L.ema_fg_dice[e1], L.dice_per_class_or_region[e1] = mean, ema, dice
  L.train_losses[e1], L.val_losses[e1], L.lrs[e1] = tl, vloss, lr
  L.epoch_start_timestamps[e1] = st.epoch_start
  L.epoch_end_timestamps[e1] = logger.wall()
  logger:print("train_loss", pyfloat(round(tl, 4)))
  logger:print("val_loss", pyfloat(round(vloss, 4)))
  local pd = {}
  for k, v in ipairs(dice) do pd[k] = pyfloat(round(v, 4)) end
  logger:print("Pseudo dice", "[" .. table.concat(pd, ", ") .. "]")
  local dt = L.epoch_end_timestamps[e1] - L.epoch_start_timestamps[e1]
  logger:print(("Epoch time: %s s"):format(pyfloat(round(dt, 2))))
  if dist.size() > 1 then
    logger:print(("Gradient allreduce (%d ranks): %s s of the epoch%s"):format(dist.size(),
      pyfloat(round(st.t_allreduce or 0, 2)), (st.grad_buckets or 0) > 0 and " not hidden behind the backward" or ""))
    st.t_allreduce = 0
  end
  st.epoch, st.iter, st.partial = e1, 0, {}
  if st.best_ema == nil or (ema == ema and ema > st.best_ema) then
    st.best_ema = ema
    logger:print(("Yayy! New best EMA pseudo Dice: %s"):format(pyfloat(round(ema, 4))))
    save_checkpoint(st, "checkpoint_best.pth")
  end
  if e1 % tr.save_every == 0 and epoch ~= E - 1 then save_checkpoint(st, "checkpoint_latest.pth") end
  local png = paths.join(st.folder, "progress.png")
  local okp, perr = true, nil
  if dist.is_main() then
    okp, perr = pcall(function()
      injected_failure(png)
      require("lunet.util.plot").progress(L, png)
    end)
  end
  if not okp then
    -- a plot is not worth stopping for: the run goes on, the message says why the picture is stale
    local msg = ("progress.png not written: %s; %s"):format(tostring(perr), paths.isfile(png) and
      "the previous progress.png is intact (shows the epochs before this one)" or "there is no progress.png yet")
    logger:print("WARNING: " .. msg)
    io.stderr:write("lunet train: WARNING: ", msg, "\n")
    io.stderr:flush()
  end
  if st.show and not st.tty then
    io.stderr:write(("epoch %d/%d: %d it in %.1f s (%.2f it/s, %.0f%% waiting for batches), train_loss %.4f, " ..
      "val_loss %.4f, pseudo dice %.4f (ema %.4f)\n"):format(epoch, E, I, t_train, I / math.max(t_train, 1e-9),
      100 * t_wait / math.max(t_train, 1e-9), tl, vloss, mean, ema))
    io.stderr:flush()
  end
end

--- Epochs from st.epoch (and st.iter, when resumed mid-epoch) to num_epochs. Returns the signal number when a
--- signal stopped the run (checkpoint_latest.pth is then saved), else nil.
local function run_epochs(st, run, prefetch)
  local tr, logger = st.tr, st.logger
  while st.epoch < tr.num_epochs do
    local lr = M.lr(tr, st.epoch)
    if st.iter == 0 then
      st.epoch_start = logger.wall()
      st.partial = {}
      logger:print("")
      logger:print(("Epoch %d"):format(st.epoch))
      logger:print(("Current learning rate: %s"):format(pyfloat(round(lr, 5))))
    end
    local t_train, t_wait, stopped_by = train_iterations(st, lr, prefetch)
    if stopped_by then return stopped_by end
    run.wait_share = t_wait / math.max(t_train, 1e-9)
    local sig = interrupted(st, "validation")
    if sig then return sig end
    local vloss, dice, mean = validation_iterations(st)
    end_epoch(st, lr, vloss, dice, mean, t_train, t_wait)
  end
  return nil
end

--- nnUNetTrainer.on_train_end (checkpoint_final.pth, checkpoint_latest.pth removed), then the final validation;
--- a failed validation leaves the finished training intact: it is reported, rerun with --val-only.
local function finish(st, run, val_only, val_best)
  local logger = st.logger
  if not val_only and st.epoch >= st.tr.num_epochs then
    save_checkpoint(st, "checkpoint_final.pth")
    if dist.is_main() and not st.disable_checkpointing then os.remove(paths.join(st.folder, "checkpoint_latest.pth")) end
    logger:print("Training done.")
  end
  if val_best then
    -- nnU-Net's --val_best: the final validation with checkpoint_best's weights (same validation/ folder)
    local best = paths.join(st.folder, "checkpoint_best.pth")
    if not paths.isfile(best) then error(best .. ": not found; --val_best needs a checkpoint_best", 0) end
    st.net:load(best)
    logger:print("Validating with checkpoint_best.pth (--val_best)")
  end
  -- the final validation's cases are shared out over the ranks; rank 0 evaluates (final_validation)
  if not dist.is_main() then
    local okv, err = pcall(final_validation, st)
    if not okv then io.stderr:write(("lunet: rank %d: final validation failed: %s\n"):format(dist.rank(), tostring(err))) end
    return
  end
  local okv, summary = pcall(final_validation, st)
  if okv then run.validation = summary
  else
    run.validation_error = tostring(summary)
    logger:print("ERROR: final validation failed (rerun it with --val-only): " .. run.validation_error)
  end
end

local train

function M.train(o)
  if type(o) ~= "table" then error("trainer.train: expected a table of options", 2) end
  -- data-parallel (mpirun/srun): an error on any rank ends every rank (MPI_Abort), naming the failed rank
  if dist.size() > 1 then return dist.guard(train, o) end
  return train(o)
end

function train(o)
  if o.dataset == nil and type(o.plans) == "table" then o.dataset = o.plans.dataset_name end
  if o.dataset == nil then error("trainer.train: dataset is required", 2) end
  if o.configuration == nil then error("trainer.train: configuration is required", 2) end
  local r = resolve_run(o, check_fold(o))
  local lock <close> = lock_fold(r) -- released on return and on error
  local st = set_up(o, r)
  if o.install_signals ~= false then core.signal.install() end
  local run = { folder = st.folder, model_folder = st.model_dir, log = st.log }
  if not o.val_only then
    run.interrupted = run_epochs(st, run, o.prefetch ~= false and os.getenv("LUNET_PREFETCH") ~= "0")
    if run.interrupted then st.logger:close(); return run end
  end
  finish(st, run, o.val_only, o.val_best)
  st.logger:close()
  return run
end

--- lunet.train(plans, cfg, fold, opts) or lunet.train{...}
function M.__call_train(plans, cfg, fold, opts)
  if type(plans) == "table" and cfg == nil and plans.configuration then return M.train(plans) end
  opts = deep_copy(opts or {})
  opts.plans, opts.configuration, opts.fold = plans, cfg, fold
  if type(plans) == "table" and not opts.dataset then opts.dataset = plans.dataset_name end
  return M.train(opts)
end

return setmetatable(M, { __call = function(_, ...) return M.__call_train(...) end })
