-- `lunet train DATASET CONFIG FOLD ...`: nnUNetv2_train.
local USAGE = [==[
usage: lunet train DATASET CONFIG FOLD [-p PLANS] [-tr TRAINER] [--rules RULES] [--epochs N] [--iters N]
                   [--val-iters N] [--continue] [--val-only] [--val_best] [--disable_checkpointing] [--npz]
                   [--seed S] [--device D] [-np N] [-q] [-pretrained_weights FILE.pth]

Trains CONFIG (2d, 3d_fullres, 3d_lowres, ...) of DATASET (id or name) on FOLD (0-4 or all) from the preprocessed
data in nnUNet_preprocessed, as nnUNetv2_train: poly learning rate, pseudo Dice on validation patches and its moving
average, checkpoint_best / checkpoint_latest / checkpoint_final, then the final validation of the fold's cases
into validation/ with summary.json. Results: nnUNet_results/DatasetXXX/<trainer>__<plans>__<CONFIG>/fold_<FOLD>/
(training_log_*.txt, progress.png, debug.json). Ctrl-C (SIGINT) or SIGTERM saves checkpoint_latest first.

Data-parallel, as nnUNetv2_train -num_gpus N: `mpirun -np N lunet train ...` (or srun) trains one model on N
ranks, each on its own OpenCL device (local rank, + LUNET_DEVICE_OFFSET; --device D pins one), the plan's batch
split over the ranks, gradients averaged with MPI; rank 0 writes every file. See docs/distributed.md.

  -p PLANS         plans identifier (default nnUNetPlans)
  -tr TRAINER      trainer name (default nnUNetTrainer) or trainer file (a path, or ending in .lua): overrides of
                   the trainer rules (epochs, LR, loss weights, augmentation). A name is looked up in each
                   directory of $LUNET_TRAINERS, then ./, then the shipped rules/trainers/: NAME.lua there, or a
                   trainer family file naming it. The trainer name names the results folder and checkpoints
  --rules RULES    planning rule file (or preset) whose `trainer` and `augmentation` tables the run starts from
                   (default rules/default.lua); -tr applies on top. Also -pl
  --epochs N       number of epochs (default 1000)
  --iters N        training iterations per epoch (default 250)
  --val-iters N    validation iterations per epoch (default 50)
  --continue, --c  continue from checkpoint_final, _latest or _best (in that order), as nnU-Net
  --val-only, --val  only run the final validation (needs checkpoint_final)
  --val_best       run the final validation with checkpoint_best's weights (same validation/ folder, as nnU-Net)
  --disable_checkpointing   write no checkpoint (nnU-Net's flag: quick experiments whose weights are not kept)
  --npz            also save the validation probabilities (.npz + .json)
  --seed S         seed of every random draw (default 0): same seed, same device -> same run
  --device D       OpenCL device index (lunet.devices()), or nnU-Net's cpu / cuda (first CPU / GPU device);
                   default: the default device
  -np N            host threads for data augmentation and export (default 2)
  -q               no per-line log echo on stdout (the log file is still written)
  -pretrained_weights FILE.pth   start from the weights of a checkpoint (nnU-Net's or Lunet's) made for the
                   same architecture; the segmentation heads keep their initialisation, as nnU-Net's fine-tuning
]==]

-- the shipped trainer names, by family (rules/trainers/)
local function trainer_list()
  local ok, list = pcall(function() return require("lunet.trainer").available({ shipped_only = true }) end)
  if not ok or #list == 0 then return "" end
  local out, fam, line = { "\nTrainers shipped in rules/trainers/ (-tr NAME):\n" }, nil, nil
  local function flush() if line then out[#out + 1] = line .. "\n"; line = nil end end
  for _, t in ipairs(list) do
    if t.family ~= fam then
      flush()
      fam = t.family
      out[#out + 1] = ("  %s: %s\n"):format(fam, t.about or "")
    end
    if line and #line + #t.name + 1 > 112 then flush() end
    line = line and (line .. " " .. t.name) or ("    " .. t.name)
  end
  flush()
  return table.concat(out)
end
USAGE = USAGE .. trainer_list()

local function fail(msg) io.stderr:write("lunet train: " .. msg .. "\n"); return 2 end

local M = { summary = "train a configuration on one fold (nnUNetv2_train)", usage = USAGE }

local function int_arg(args, i, name)
  local v = args[i + 1]
  local n = v and math.tointeger(tonumber(v))
  if not n then return nil, name .. " needs an integer, got " .. tostring(v) end
  return n
end

function M.parse(args)
  local o, pos = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    local err
    if a == "-h" or a == "--help" then io.write(USAGE); return nil, 0
    elseif a == "-p" or a == "--plans" then
      o.plans = args[i + 1]; i = i + 1
      if not o.plans then return nil, fail(a .. " needs a plans identifier") end
    elseif a == "-tr" or a == "--trainer" then
      o.trainer = args[i + 1]; i = i + 1
      if not o.trainer then return nil, fail(a .. " needs a trainer name or file (.lua)") end
      local ok, e = pcall(require("lunet.trainer").find_trainer, o.trainer)
      if not ok then return nil, fail(tostring(e)) end
    elseif a == "--rules" or a == "-pl" then
      o.rules = args[i + 1]; i = i + 1
      if not o.rules then return nil, fail(a .. " needs a rule file or preset") end
      local ok, e = pcall(function() require("lunet.trainer").rules_of(o.rules) end)
      if not ok then return nil, fail(tostring(e)) end
    elseif a == "--epochs" then o.epochs, err = int_arg(args, i, a); i = i + 1
    elseif a == "--iters" then o.iterations, err = int_arg(args, i, a); i = i + 1
    elseif a == "--val-iters" then o.val_iterations, err = int_arg(args, i, a); i = i + 1
    elseif a == "--seed" then o.seed, err = int_arg(args, i, a); i = i + 1
    elseif a == "--device" or a == "-device" then
      if args[i + 1] == nil then return nil, fail(a .. " needs a value") end
      local ok, d = pcall(require("lunet.util.device_arg").resolve, args[i + 1])
      if not ok then return nil, fail(tostring(d)) end
      o.device = d; i = i + 1
    elseif a == "-np" then o.threads, err = int_arg(args, i, a); i = i + 1
    elseif a == "--continue" or a == "--c" or a == "-c" then o.continue = true
    elseif a == "--val-only" or a == "--val" then o.val_only = true
    elseif a == "--val_best" or a == "--val-best" then o.val_best = true
    elseif a == "--disable_checkpointing" or a == "--disable-checkpointing" then o.disable_checkpointing = true
    elseif a == "--npz" then o.npz = true
    elseif a == "-q" then o.quiet = true
    elseif a == "-pretrained_weights" or a == "--pretrained-weights" then
      o.pretrained_weights = args[i + 1]; i = i + 1
      if not o.pretrained_weights then return nil, fail(a .. " needs a checkpoint file") end
      local f = io.open(o.pretrained_weights, "rb")
      if not f then return nil, fail("pretrained weights " .. o.pretrained_weights .. " not found") end
      f:close()
    elseif a:sub(1, 1) == "-" and not a:match("^%-%d") then return nil, fail("unknown option " .. a .. "\n" .. USAGE)
    else pos[#pos + 1] = a end
    if err then return nil, fail(err) end
    i = i + 1
  end
  if #pos ~= 3 then io.stderr:write(USAGE); return nil, 2 end
  o.dataset, o.configuration = pos[1], pos[2]
  if pos[3] == "all" then o.fold = "all"
  else
    o.fold = math.tointeger(tonumber(pos[3]))
    if not o.fold or o.fold < 0 then return nil, fail("FOLD must be an integer >= 0 or 'all', got " .. pos[3]) end
  end
  for _, k in ipairs({ { "epochs", "--epochs" }, { "iterations", "--iters" }, { "threads", "-np" } }) do
    if o[k[1]] and o[k[1]] < 1 then return nil, fail(k[2] .. " must be >= 1, got " .. o[k[1]]) end
  end
  if o.val_iterations and o.val_iterations < 0 then return nil, fail("--val-iters must be >= 0") end
  if o.val_best and o.disable_checkpointing then
    return nil, fail("--val_best is not compatible with --disable_checkpointing (there is no checkpoint_best)")
  end
  if o.pretrained_weights and (o.continue or o.val_only) then
    return nil, fail("-pretrained_weights only starts a training: it cannot be combined with --continue or --val-only")
  end
  return o
end

function M.run(args)
  local o, code = M.parse(args)
  if not o then return code end
  local r = require("lunet.trainer").train(o)
  if r.interrupted then return 128 + r.interrupted end
  if r.validation_error then
    io.stderr:write("lunet train: final validation failed: " .. r.validation_error .. "\n")
    return 1
  end
  return 0
end

return M
