-- lunet predict: nnUNetv2_predict.
local args = require "lunet.cli.args"

local M = args.command({ summary = "sliding-window prediction of a folder of images as nnUNetv2_predict" })

--- The options, on p; predict-from-modelfolder declares them too, with_model false leaving out -d/-c/-p/-tr.
function M.declare(p, with_model)
  p:option("-i", "input folder: files <case>_XXXX<file_ending>"):argname("IN"):count(1)
  p:option("-o", "output folder"):argname("OUT"):count(1)
  if with_model ~= false then
    p:option("-d", "dataset id or name"):argname("DATASET")
    p:option("-c", "configuration (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres, ...)"):argname("CONFIG")
    p:option("-p", "plans identifier (default nnUNetPlans)"):argname("PLANS")
    p:option("-tr", "trainer (default nnUNetTrainer)"):argname("TRAINER")
  end
  local m = p:option("-m", "a trained model folder used as it is (Lunet's or nnunetv2's, e.g. one installed with "
    .. "lunet install-model), instead of -d/-c/-p/-tr; the configuration is the checkpoint's"):argname("MODEL_FOLDER")
  if with_model == false then m:count(1) end
  p:option("-f", "folds (default: every fold_N folder present); all uses fold_all"):args("+"):argname("FOLD")
    :convert(args.fold("-f"))
  p:option("-chk", "checkpoint name (default checkpoint_final)"):argname("CHECKPOINT")
  p:option("-step_size", "sliding-window step as a fraction of the patch (default 0.5; also --step-size)")
    :hidden_name("--step-size"):argname("S"):convert(function(v)
      local n = tonumber(v)
      -- 0 would never advance the window, above 1 would leave gaps between windows
      if not n or not (n > 0 and n <= 1) then return nil, "-step_size needs a number in (0, 1], got " .. v end
      return n
    end)
  p:flag("--disable_tta", "no test-time mirroring (8x faster in 3-D)")
  p:option("--tta-axes", "mirror only along these of the model's axes, e.g. 0,1"):argname("A,B")
    :convert(function(v)
      local axes = {}
      for s in v:gmatch("[^,%s]+") do
        local n = math.tointeger(tonumber(s))
        if not n or n < 0 then return nil, "--tta-axes needs axis numbers such as 0,1, got " .. v end
        axes[#axes + 1] = n
      end
      return axes
    end)
  p:option("--mirror-batch", "mirrorings of a window per forward, as one batch (default 2 for 2-D models, 1 for "
    .. "3-D; more trade host memory for speed, fewer save memory)"):argname("N")
    :convert(args.int("--mirror-batch", 1))
  p:option("--precision", "the network's arithmetic: auto (mixed on a GPU, as nnU-Net autocasts on CUDA; fp32 "
    .. "elsewhere), mixed (float16 activations) or fp32"):argname("P"):choices({ "auto", "mixed", "fp32" })
  p:flag("--save_probabilities", "also write <case>.npz (\"probabilities\") and <case>.json (properties)")
  p:option("-prev_stage_predictions", "cascade: folder with the 3d_lowres predictions (required for "
    .. "3d_cascade_fullres; also --prev-stage-predictions)"):hidden_name("--prev-stage-predictions"):argname("DIR")
  p:option("-device", "OpenCL device index (lunet.devices()), or nnU-Net's cpu / cuda (first CPU / GPU device); "
    .. "also --device"):hidden_name("--device"):argname("D")
  p:option("-np", "host threads (default 2)"):argname("N"):convert(args.int("-np", 1))
  p:option("-npp", "preprocessing worker processes: the next N cases are read, cropped, normalised and resampled "
    .. "while this one is predicted (default 1; 0: in line)"):argname("N"):convert(args.int("-npp", 0))
  p:option("-nps", "export worker processes: a case's export (resampling, argmax, writing) runs in a child process "
    .. "while the next case is predicted (default 1; 0: in line)"):argname("N"):convert(args.int("-nps", 0))
  p:option("--stream", "sliding window and export slab by slab along the first axis, so that the host never holds "
    .. "the K-class logits of a whole volume (auto: when they would exceed 1 GiB as float16; never with "
    .. "--save_probabilities)"):choices({ "auto", "on", "off" })
  p:flag("--continue_prediction", "skip cases whose output already exists")
  p:flag("-v --verbose", "print where the time went (preprocessing, sliding window, export)")
  p:option("-num_parts", "predict only every N-th case starting at case -part_id (nnU-Net's split of one folder "
    .. "over several runs, e.g. one per GPU): cases K, K+N, K+2N, ... of the sorted case list (also --num-parts)")
    :hidden_name("--num-parts"):argname("N"):convert(args.int("-num_parts", 1))
  p:option("-part_id", "which part this run predicts, 0 .. num_parts-1 (also --part-id)"):hidden_name("--part-id")
    :argname("K"):convert(args.int("-part_id", 0))
  p:flag("--disable_progress_bar", "no progress bar")
end

function M.parser()
  local p = args.parser("predict", [[
Predicts every case of IN (files <case>_XXXX<file_ending>) with the model in
$nnUNet_results/<dataset>/<trainer>__<plans>__<config>/fold_N/<checkpoint>.*, averaging the folds' logits,
and writes OUT/<case><file_ending> with the input's geometry. Give -d and -c, or -m MODEL_FOLDER.]])
  M.declare(p)
  return p
end

-- lunet.predict.folder's options from a parse result; raises error(msg, 0) for mistakes across options
local function options(r)
  local o = { input = r.i, output = r.o, dataset = r.d, configuration = r.c, plans = r.p, trainer = r.tr,
    model_dir = r.m, step_size = r.step_size, disable_tta = r.disable_tta, tta_axes = r.tta_axes,
    save_probabilities = r.save_probabilities, prev_stage_predictions = r.prev_stage_predictions,
    threads = r.np, preprocess_workers = r.npp, export_workers = r.nps, continue_prediction = r.continue_prediction,
    verbose = r.verbose, num_parts = r.num_parts, part_id = r.part_id, mirror_batch = r.mirror_batch,
    precision = r.precision }
  if r.chk then o.checkpoint = r.chk:gsub("%.pth$", "") end
  if r.f then
    for _, f in ipairs(r.f) do
      if f == "all" and #r.f > 1 then error("-f: 'all' cannot be combined with fold numbers", 0) end
    end
    o.folds = r.f[1] == "all" and "all" or r.f
  end
  if r.device then o.device = math.tointeger(tonumber(r.device)) or r.device end
  if r.stream == "on" then o.stream = true elseif r.stream == "off" then o.stream = false end
  if r.disable_progress_bar then o.progress = false end
  if (o.part_id or 0) >= (o.num_parts or 1) then
    error(("-part_id %d needs -num_parts above it (parts are 0..num_parts-1)"):format(o.part_id), 0)
  end
  if not o.model_dir then
    for _, k in ipairs({ { "dataset", "-d" }, { "configuration", "-c" } }) do
      if not o[k[1]] then error("missing " .. k[2] .. " (or give a model folder with -m)", 0) end
    end
  end
  return o
end

--- Parses args into lunet.predict.folder's options ({ help = true } for -h); raises error(msg, 0) on a mistake.
function M.parse(argv)
  local r = args.parse(M.parser(), argv)
  if r.help then return r end
  return options(r)
end

--- Runs the prediction; command names the command in messages (predict-from-modelfolder runs it too).
function M.run(argv, command, parser)
  command = command or "predict"
  local p = parser or M.parser()
  local o, code = args.parse_or_status(p, command, argv, options)
  if not o then return code end
  -- nnU-Net's -device cpu|cuda: the matching OpenCL device, or an error naming the devices there are
  local okd, dev = pcall(require("lunet.util.device_arg").resolve, o.device)
  if not okd then io.stderr:write("lunet " .. command .. ": " .. tostring(dev) .. "\n") return 2 end
  o.device = dev
  local ids, skipped = require("lunet.predict").folder(o)
  skipped = skipped or 0
  -- as preprocess reports it: cases kept by --continue-prediction were not predicted by this run
  io.write(string.format("predicted %d cases into %s", #ids - skipped, o.output))
  if skipped > 0 then
    io.write(string.format(", %d already done (kept by --continue-prediction; leave it out to predict them again)",
      skipped))
  end
  io.write("\n")
  return 0
end

return M
