-- `lunet train DATASET CONFIG FOLD ...`: nnUNetv2_train.
local args = require "lunet.cli.args"

local M = args.command({ summary = "train a configuration on one fold (nnUNetv2_train)" })

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
function M.parser()
  local p = args.parser("train", [[
Trains CONFIG (2d, 3d_fullres, 3d_lowres, ...) of DATASET (id or name) on FOLD (0-4 or all) from the preprocessed
data in nnUNet_preprocessed, as nnUNetv2_train: poly learning rate, pseudo Dice on validation patches and its moving
average, checkpoint_best / checkpoint_latest / checkpoint_final, then the final validation of the fold's cases
into validation/ with summary.json. Results: nnUNet_results/DatasetXXX/<trainer>__<plans>__<CONFIG>/fold_<FOLD>/
(training_log_*.txt, progress.png, debug.json). Ctrl-C (SIGINT) or SIGTERM saves checkpoint_latest first.

Data-parallel, as nnUNetv2_train -num_gpus N: `mpirun -np N lunet train ...` (or srun) trains one model on N
ranks, each on its own OpenCL device (local rank, + LUNET_DEVICE_OFFSET; -device D pins one), the plan's batch
split over the ranks, gradients averaged with MPI in buckets that overlap the backward (LUNET_BUCKET_MB, default 25;
0: one allreduce after it); rank 0 writes every file. See docs/distributed.md.]])
  p:argument("DATASET", "dataset id or name")
  p:argument("CONFIG", "configuration")
  p:argument("FOLD", "fold number or all"):convert(args.fold("FOLD"))
  p:option("-p", "plans identifier (default nnUNetPlans; also --plans)"):hidden_name("--plans"):argname("PLANS")
  p:option("-tr", "trainer name (default nnUNetTrainer) or trainer file (a path, or ending in .lua): overrides of "
    .. "the trainer rules (epochs, LR, loss weights, augmentation). A name is looked up in each directory of "
    .. "$LUNET_TRAINERS, then ./, then the shipped rules/trainers/: NAME.lua there, or a trainer family file "
    .. "naming it. The trainer name names the results folder and checkpoints (also --trainer)")
    :hidden_name("--trainer"):argname("TRAINER")
  p:option("--rules", "planning rule file (or preset) whose `trainer` and `augmentation` tables the run starts "
    .. "from (default rules/default.lua); -tr applies on top (also -pl)"):hidden_name("-pl"):argname("RULES")
  p:option("--epochs", "number of epochs (default 1000)"):argname("N"):convert(args.int("--epochs", 1))
  p:option("--iters", "training iterations per epoch (default 250)"):argname("N"):convert(args.int("--iters", 1))
  p:option("--val-iters", "validation iterations per epoch (default 50)"):argname("N")
    :convert(args.int("--val-iters", 0))
  p:flag("--continue --c", "continue from checkpoint_final, _latest or _best (in that order), as nnU-Net")
    :hidden_name("-c")
  p:flag("--val-only --val", "only run the final validation (needs checkpoint_final)")
  p:flag("--val_best", "run the final validation with checkpoint_best's weights (same validation/ folder, as "
    .. "nnU-Net)")
  p:flag("--disable_checkpointing", "write no checkpoint (nnU-Net's flag: quick experiments whose weights are not "
    .. "kept)")
  p:flag("--npz", "also save the validation probabilities (.npz + .json)")
  p:option("--seed", "seed of every random draw (default 0): same seed, same device -> same run"):argname("S")
    :convert(args.int("--seed"))
  p:option("-device", "OpenCL device index (lunet.devices()), or nnU-Net's cpu / cuda (first CPU / GPU device); "
    .. "default: the default device (also --device)"):hidden_name("--device"):argname("D")
  p:option("-num_gpus", "nnU-Net's multi-GPU switch: 1 is accepted; for more, start the ranks with mpirun (above)")
    :argname("N"):convert(function(s)
      local n = math.tointeger(tonumber(s))
      if n == 1 then return n end
      return nil, "-num_gpus " .. s .. ": Lunet trains on several devices as MPI ranks: mpirun -np " .. s
        .. " lunet train ... (docs/distributed.md)"
    end)
  p:flag("--use_compressed", "accepted for nnU-Net's command lines: Lunet's case store is always read compressed, "
    .. "chunk by chunk")
  p:option("-np", "host threads for data augmentation and export (default 2)"):argname("N")
    :convert(args.int("-np", 1))
  p:flag("-q", "no per-line log echo on stdout (the log file is still written)")
  p:option("-pretrained_weights", "start from the weights of a checkpoint (nnU-Net's or Lunet's) made for the "
    .. "same architecture; the segmentation heads keep their initialisation, as nnU-Net's fine-tuning (also "
    .. "--pretrained-weights)"):hidden_name("--pretrained-weights"):argname("FILE.pth")
  p:epilog(trainer_list())
  return p
end

-- the trainer's options from a parse result; raises error(msg, 0) for mistakes found before any work
local function options(r)
  local o = { dataset = r.DATASET, configuration = r.CONFIG, fold = r.FOLD, plans = r.p, trainer = r.tr,
    rules = r.rules, epochs = r.epochs, iterations = r.iters, val_iterations = r.val_iters, seed = r.seed,
    threads = r.np, continue = r.continue, val_only = r.val_only, val_best = r.val_best,
    disable_checkpointing = r.disable_checkpointing, npz = r.npz, quiet = r.q,
    pretrained_weights = r.pretrained_weights }
  if o.trainer then require("lunet.trainer").find_trainer(o.trainer) end
  if o.rules then
    -- called by pcall itself: load_rules blames its caller's caller (level 3), which then has no source position
    local ok, e = pcall(require("lunet.trainer").rules_of, o.rules)
    if not ok then error(e, 0) end
  end
  if r.device then o.device = require("lunet.util.device_arg").resolve(r.device) end
  if o.val_best and o.disable_checkpointing then
    error("--val_best is not compatible with --disable_checkpointing (there is no checkpoint_best)", 0)
  end
  if o.pretrained_weights then
    if o.continue or o.val_only then
      error("-pretrained_weights only starts a training: it cannot be combined with --continue or --val-only", 0)
    end
    local f = io.open(o.pretrained_weights, "rb")
    if not f then error("pretrained weights " .. o.pretrained_weights .. " not found", 0) end
    f:close()
  end
  return o
end

--- Parses args; returns the trainer's options, or nil and the exit status (0 after -h, 2 after a mistake).
function M.parse(argv)
  return args.parse_or_status(M.parser(), "train", argv, options)
end

function M.run(argv)
  local o, code = M.parse(argv)
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
