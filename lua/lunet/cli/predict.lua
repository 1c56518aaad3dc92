-- lunet predict: nnUNetv2_predict.
local USAGE = [[
usage: lunet predict -i IN -o OUT (-d DATASET -c CONFIG | -m MODEL_FOLDER) [-f 0 1 2 3 4 | all] [-p plans] [-tr trainer]
                     [-chk checkpoint_final] [--step-size 0.5] [--disable-tta] [--tta-axes 0,1,2]
                     [--save-probabilities] [--prev-stage-predictions DIR] [--device D] [-np N]
                     [-npp N] [-nps N] [--stream auto|on|off] [--continue-prediction]

Predicts every case of IN (files <case>_XXXX<file_ending>) with the model in
$nnUNet_results/<dataset>/<trainer>__<plans>__<config>/fold_N/<checkpoint>.*, averaging the folds' logits,
and writes OUT/<case><file_ending> with the input's geometry.
  -m MODEL_FOLDER           a trained model folder used as it is (Lunet's or nnunetv2's, e.g. one installed with
                            lunet install-model), instead of -d/-c/-p/-tr; the configuration is the checkpoint's
  -f F...                   folds (default: every fold_N folder present); "all" uses fold_all
  -p / -tr / -chk           plans (nnUNetPlans), trainer (nnUNetTrainer), checkpoint (checkpoint_final)
  --step-size S             sliding-window step as a fraction of the patch (default 0.5)
  --disable-tta             no test-time mirroring (8x faster in 3-D)
  --tta-axes A,B            mirror only along these of the model's axes
  --save-probabilities      also write <case>.npz ("probabilities") and <case>.json (properties)
  --prev-stage-predictions  cascade: folder with the 3d_lowres predictions (required for 3d_cascade_fullres)
  --device D                OpenCL device index (lunet.devices()), or nnU-Net's cpu / cuda (first CPU / GPU device)
  -np N                     host threads (default 2)
  -npp N                    preprocessing worker processes: the next N cases are read, cropped, normalised
                            and resampled while this one is predicted (default 1; 0: in line)
  -nps N                    export worker processes: a case's export (resampling, argmax, writing) runs in
                            a child process while the next case is predicted (default 1; 0: in line)
  --stream auto|on|off      sliding window and export slab by slab along the first axis, so that the host
                            never holds the K-class logits of a whole volume (auto: when they would exceed
                            1 GiB as float16; never with --save-probabilities)
  --continue-prediction     skip cases whose output already exists
  -v                        print where the time went (preprocessing, sliding window, export)
  -num_parts N -part_id K   predict only every N-th case starting at case K (nnU-Net's split of one folder over
                            several runs, e.g. one per GPU): cases K, K+N, K+2N, ... of the sorted case list
  --disable_progress_bar    no progress bar
]]

local M = { summary = "sliding-window prediction of a folder of images as nnUNetv2_predict", usage = USAGE }

local function int(s, what)
  local v = math.tointeger(tonumber(s))
  if v == nil then error(what .. " needs an integer, got " .. tostring(s), 0) end
  return v
end

function M.parse(args)
  local o = {}
  local i = 1
  local function val(name)
    local v = args[i + 1]
    if v == nil then error(name .. " needs a value", 0) end
    i = i + 1
    return v
  end
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then o.help = true
    elseif a == "-i" then o.input = val(a)
    elseif a == "-o" then o.output = val(a)
    elseif a == "-d" then o.dataset = val(a)
    elseif a == "-m" then o.model_dir = val(a)
    elseif a == "-c" then o.configuration = val(a)
    elseif a == "-p" then o.plans = val(a)
    elseif a == "-tr" then o.trainer = val(a)
    elseif a == "-chk" then o.checkpoint = val(a):gsub("%.pth$", "")
    elseif a == "-f" then
      local folds = {}
      while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do
        local v = args[i + 1]
        if v == "all" then folds = "all" else
          if folds == "all" then error("-f: 'all' cannot be combined with fold numbers", 0) end
          folds[#folds + 1] = int(v, "-f")
        end
        i = i + 1
      end
      if folds ~= "all" and #folds == 0 then error("-f needs fold numbers or 'all'", 0) end
      o.folds = folds
    elseif a == "--step-size" or a == "-step_size" then
      local v = val(a)
      o.step_size = tonumber(v)
      -- 0 would never advance the window, above 1 would leave gaps between windows
      if not o.step_size or o.step_size <= 0 or o.step_size > 1 then
        error(a .. " needs a number in (0, 1], got " .. v, 0)
      end
    elseif a == "--disable-tta" or a == "--disable_tta" then o.disable_tta = true
    elseif a == "--tta-axes" then
      o.tta_axes = {}
      for s in val(a):gmatch("[^,%s]+") do o.tta_axes[#o.tta_axes + 1] = int(s, "--tta-axes") end
    elseif a == "--save-probabilities" or a == "--save_probabilities" then o.save_probabilities = true
    elseif a == "--prev-stage-predictions" or a == "-prev_stage_predictions" then o.prev_stage_predictions = val(a)
    elseif a == "--device" or a == "-device" then
      local v = val(a)
      o.device = math.tointeger(tonumber(v)) or v
    elseif a == "-np" then
      o.threads = int(val(a), "-np")
      if o.threads < 1 then error("-np needs a count >= 1", 0) end
    elseif a == "-npp" then
      o.preprocess_workers = int(val(a), "-npp")
      if o.preprocess_workers < 0 then error("-npp needs a count >= 0", 0) end
    elseif a == "-nps" then
      o.export_workers = int(val(a), "-nps")
      if o.export_workers < 0 then error("-nps needs a count >= 0", 0) end
    elseif a == "--stream" then
      local v = val(a)
      if v == "on" then o.stream = true elseif v == "off" then o.stream = false
      elseif v ~= "auto" then error("--stream needs auto, on or off, got " .. v, 0) end
    elseif a == "--continue-prediction" or a == "--continue_prediction" then o.continue_prediction = true
    elseif a == "-v" or a == "--verbose" then o.verbose = true
    elseif a == "--disable_progress_bar" or a == "--disable-progress-bar" then o.progress = false
    elseif a == "-num_parts" or a == "--num-parts" then
      o.num_parts = int(val(a), "-num_parts")
      if o.num_parts < 1 then error("-num_parts needs a count >= 1", 0) end
    elseif a == "-part_id" or a == "--part-id" then
      o.part_id = int(val(a), "-part_id")
      if o.part_id < 0 then error("-part_id needs an index >= 0", 0) end
    else error("unknown option " .. a, 0) end
    i = i + 1
  end
  if (o.part_id or 0) >= (o.num_parts or 1) then
    error(("-part_id %d needs -num_parts above it (parts are 0..num_parts-1)"):format(o.part_id), 0)
  end
  if not o.help then
    local need = o.model_dir and { { "input", "-i" }, { "output", "-o" } }
      or { { "input", "-i" }, { "output", "-o" }, { "dataset", "-d" }, { "configuration", "-c" } }
    for _, k in ipairs(need) do
      if not o[k[1]] then error("missing " .. k[2], 0) end
    end
  end
  return o
end

function M.run(args)
  local ok, o = pcall(M.parse, args)
  if not ok then
    io.stderr:write("lunet predict: " .. tostring(o) .. "\n" .. USAGE)
    return 2
  end
  if o.help then io.write(USAGE) return 0 end
  -- nnU-Net's -device cpu|cuda: the matching OpenCL device, or an error naming the devices there are
  local okd, dev = pcall(require("lunet.util.device_arg").resolve, o.device)
  if not okd then io.stderr:write("lunet predict: " .. tostring(dev) .. "\n") return 2 end
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
