--[[ lunet.model_sharing: trained models as nnU-Net's model zips (nnUNetv2_export_model_to_zip /
nnUNetv2_install_pretrained_model_from_zip), so a zip made by either tool installs in the other.

  model_sharing.export{dataset=, output=, configurations=, trainer=, plans=, folds=, strict=, checkpoints=,
                       export_crossval_predictions=}   -> list of the entry names written
  model_sharing.install(zip_file [, results_dir])      -> list of the files extracted

The zip holds paths relative to nnUNet_results (Dataset.../<trainer>__<plans>__<config>/...), deflated, exactly
the files nnunetv2/model_sharing/model_export.py picks: per fold debug.json (if present), the checkpoints,
progress.png, network_architecture.pdf (if present) and validation/summary.json (or the whole validation folder
without .npz/.pkl), per configuration crossval_results_folds_* summaries and postprocessing files, plans.json,
dataset_fingerprint.json and dataset.json; the matching ensembles; inference_information.json/.txt.
]]
local core = require "lunet.core"
local paths = require "lunet.util.paths"

local M = {}

local DEFAULT_CONFIGS = { "2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres" }

-- file's path relative to root (file lies under root)
local function relative(file, root)
  root = root:gsub("/+$", "")
  return file:sub(#root + 2)
end

function M.export(o)
  if type(o) ~= "table" or not o.dataset or not o.output then
    error("model_sharing.export: needs {dataset=, output=}", 2)
  end
  local results = paths.results()
  local ds_dir = paths.results_dataset(o.dataset)
  local ds_name = paths.basename(ds_dir)
  local trainer, plans = o.trainer or "nnUNetTrainer", o.plans or "nnUNetPlans"
  local folds = o.folds or { 0, 1, 2, 3, 4 }
  local checkpoints = o.checkpoints or { "checkpoint_final.pth" }
  local strict = o.strict ~= false
  local entries = {}
  local function add(file, required)
    if paths.isfile(file) then
      entries[#entries + 1] = { name = relative(file, results), file = file }
    elseif required then
      error("export-model: " .. file .. " is missing", 0)
    end
  end
  -- a cross-validation or ensemble folder: all of it with the predictions, else its summary and postprocessing
  local function add_results_folder(d)
    if o.export_crossval_predictions then
      for _, n in ipairs(paths.listdir(d)) do add(paths.join(d, n), false) end
    else
      for _, n in ipairs { "summary.json", "postprocessing.pkl", "postprocessing.json" } do add(paths.join(d, n), false) end
    end
  end
  local configs = {}
  for _, c in ipairs(o.configurations or DEFAULT_CONFIGS) do
    local dir = paths.join(ds_dir, paths.model_identifier(trainer, plans, c))
    if not paths.isdir(dir) then
      if strict then error(("export-model: %s is missing the trained model of configuration %s (%s)"):format(
        ds_name, c, dir), 0) end
    else
      configs[#configs + 1] = c
      for _, f in ipairs(folds) do
        local fd = paths.join(dir, f == "all" and "fold_all" or ("fold_" .. tostring(f)))
        if not paths.isdir(fd) then
          error(("export-model: not all requested folds are present; %s %s: %s"):format(ds_name, c, fd), 0)
        end
        add(paths.join(fd, "debug.json"), false)
        for _, ck in ipairs(checkpoints) do add(paths.join(fd, ck), true) end
        add(paths.join(fd, "progress.png"), true)
        add(paths.join(fd, "network_architecture.pdf"), false)
        if o.export_crossval_predictions then
          for _, n in ipairs(paths.listdir(paths.join(fd, "validation"))) do
            if not n:match("%.npz$") and not n:match("%.pkl$") then add(paths.join(fd, "validation", n), false) end
          end
        else
          add(paths.join(fd, "validation", "summary.json"), true)
        end
      end
      local cv = paths.join(dir, paths.crossval_folder_name(folds))
      if paths.isdir(cv) then add_results_folder(cv) end
      add(paths.join(dir, "plans.json"), true)
      add(paths.join(dir, "dataset_fingerprint.json"), true)
      add(paths.join(dir, "dataset.json"), true)
    end
  end
  -- ensembles whose every member is among the exported models (nnU-Net's rule)
  local ens_dir = paths.join(ds_dir, "ensembles")
  if paths.isdir(ens_dir) then
    local wanted = {}
    for _, c in ipairs(configs) do wanted[paths.model_identifier(trainer, plans, c)] = true end
    for _, ens in ipairs(paths.listdir(ens_dir)) do
      local ok = paths.isdir(paths.join(ens_dir, ens))
      -- ensemble___<model>___<model>...___<folds>: every part but the last names a model
      local parts = {}
      for part in (ens .. "___"):gmatch("(.-)___") do parts[#parts + 1] = part end
      if parts[1] ~= "ensemble" or #parts < 3 then ok = false end
      for k = 2, #parts - 1 do
        if not wanted[parts[k]] then ok = false end
      end
      if ok then add_results_folder(paths.join(ens_dir, ens)) end
    end
  end
  add(paths.join(ds_dir, "inference_information.json"), false)
  add(paths.join(ds_dir, "inference_information.txt"), false)
  core.zip.write(o.output, entries, { deflate = true })
  local names = {}
  for i, e in ipairs(entries) do names[i] = e.name end
  return names
end

--- Extracts a model zip under results_dir (default $nnUNet_results), as nnU-Net's extractall; entry names that
--- would leave the folder (absolute, ..) are refused. Each file is written atomically.
function M.install(zip_file, results_dir)
  results_dir = results_dir or paths.results()
  local z = core.zip.open(zip_file)
  local out = {}
  for _, name in ipairs(z:names()) do
    if name:sub(1, 1) == "/" or name:find("\\", 1, true) or ("/" .. name .. "/"):find("/%.%./") then
      error(("install-model: %s: entry %s would be written outside %s"):format(zip_file, name, results_dir), 0)
    end
    if name:sub(-1) ~= "/" then
      local dst = paths.join(results_dir, name)
      paths.mkdirs(paths.dirname(dst))
      z:extract(name, dst)
      out[#out + 1] = dst
    end
  end
  z:close()
  return out
end

--- nnUNetv2_download_pretrained_model_by_url: fetches url (http, https, file) with curl into a temporary file
--- beside results_dir, installs it as M.install does, and removes the download. curl is Debian's; no Lua HTTP
--- library is needed for one download.
function M.download_and_install(url, results_dir)
  results_dir = results_dir or paths.results()
  paths.mkdirs(results_dir)
  local tmp = paths.join(results_dir, (".download-%d-%d.zip"):format(os.time(), math.random(1 << 30)))
  local q = function(s) return "'" .. s:gsub("'", "'\\''") .. "'" end
  local ok = os.execute("curl -fsSL --retry 2 -o " .. q(tmp) .. " " .. q(url))
  if not ok then
    os.remove(tmp)
    error(("download-model: could not download %s (curl failed; is the URL right and the network reachable?)")
      :format(url), 0)
  end
  local done, res = pcall(M.install, tmp, results_dir)
  os.remove(tmp)
  if not done then error(("download-model: %s: %s"):format(url, tostring(res)), 0) end
  return res
end

return M
