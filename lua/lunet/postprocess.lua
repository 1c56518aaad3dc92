--[==[ lunet.postprocess: nnU-Net's connected-component postprocessing (remove_connected_components.py).

  local pp = require "lunet.postprocess"
  pp.keep_largest(seg, labels_or_regions [, background])   -- nnU-Net's remove_all_but_largest_component_
      from_segmentation: mask = union of the labels/regions, keep its largest component(s) (full connectivity),
      other mask voxels -> background. Returns a new tensor. C connected components.
  pp.apply(seg, steps)  steps = { {fn=NAME, kwargs={labels_or_regions=...}}, ... } applied in order
  pp.load(file)         steps from a postprocessing.json (nnU-Net's, which lists postprocessing_fns and
                        postprocessing_kwargs) or from a postprocessing.pkl (nnU-Net's or Lunet's; the functions
                        it names are looked up in pp.functions, never imported)
  pp.apply_to_folder(in_dir, out_dir, steps, opts)   opts.dataset_json / opts.plans_json (default: in_dir's),
                        opts.read(path) -> img, opts.write(path, tensor, img)
  pp.determine(pred_dir, ref_dir, opts) -> steps   nnU-Net's determine_postprocessing: writes
                        pred_dir/postprocessing.json and .pkl (same content as nnU-Net's) and pred_dir/postprocessed/
                        (with summary.json). opts: dataset_json, plans_json, threads, keep_postprocessed (default
                        true), read/write (image I/O hooks), rules (default lunet.rules.empirical)
]==]
local core = require "lunet.core"
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local fs = require "lunet.util.fs"
local evaluate = require "lunet.evaluate"

local M = {}

local function flatten(v, out)
  out = out or {}
  if type(v) == "table" then
    for _, x in ipairs(v) do flatten(x, out) end
  else
    out[#out + 1] = math.tointeger(v) or error("postprocess: label " .. tostring(v) .. " is not an integer", 3)
  end
  return out
end

function M.keep_largest(seg, labels_or_regions, background, opts)
  opts = opts or {}
  return core.eval.keep_largest(seg, flatten(labels_or_regions),
    { background = background or 0, connectivity = opts.connectivity or 26, threads = opts.threads or 2 })
end

M.functions = {
  remove_all_but_largest_component_from_segmentation = function(seg, kwargs, opts)
    return M.keep_largest(seg, kwargs.labels_or_regions, kwargs.background_label, opts)
  end,
}

function M.apply(seg, steps, opts)
  for i, s in ipairs(steps) do
    local fn = M.functions[s.fn]
    if not fn then error(string.format("postprocess: step %d: unknown function '%s'", i, tostring(s.fn)), 2) end
    seg = fn(seg, s.kwargs or {}, opts)
  end
  return seg
end

--- Steps from nnU-Net's postprocessing.json content.
function M.steps_from_json(obj)
  local steps = {}
  local fns, kws = obj.postprocessing_fns or {}, obj.postprocessing_kwargs or {}
  for i, name in ipairs(fns) do steps[i] = { fn = name, kwargs = kws[i] or {} } end
  return steps
end

function M.load(file)
  if not paths.isfile(file) then error(file .. ": postprocessing file not found", 2) end
  local f = io.open(file, "rb")
  local first = f and f:read(1)
  if f then f:close() end
  if first == "\128" then -- a pickle (protocol 2 and later start with PROTO)
    -- nnU-Net's pickle names its functions; they are mapped to Lunet's by name (M.functions), never run
    return require("lunet.io.pickles").read_postprocessing(file)
  end
  return M.steps_from_json(json.read(file))
end

local function default_read(path) return require("lunet.io.image").read(path) end
local function default_write(path, t, like) return require("lunet.io.image").write(path, t, like) end

local function read_json_opt(v, folder, name)
  if type(v) == "table" then return v end
  local p = v or paths.join(folder, name)
  if not paths.isfile(p) then error(p .. ": " .. name .. " not found", 3) end
  return json.read(p)
end

function M.apply_to_folder(in_dir, out_dir, steps, opts)
  opts = opts or {}
  local dj = read_json_opt(opts.dataset_json, in_dir, "dataset.json")
  local read, write = opts.read or default_read, opts.write or default_write
  paths.mkdirs(out_dir)
  local files = evaluate.list_files(in_dir, dj.file_ending)
  for _, f in ipairs(files) do
    local img = read(paths.join(in_dir, f))
    local seg = M.apply(img.data, steps, opts)
    write(paths.join(out_dir, f), seg, img)
  end
  return files
end


local function without_paths(summary)
  return { foreground_mean = summary.foreground_mean, mean = summary.mean }
end

function M.determine(pred_dir, ref_dir, opts)
  opts = opts or {}
  local R = opts.rules or require("lunet.rules.empirical")
  local dj = read_json_opt(opts.dataset_json, pred_dir, "dataset.json")
  read_json_opt(opts.plans_json, pred_dir, "plans.json") -- required as nnU-Net requires it
  local ls = evaluate.label_settings(dj)
  local lr, ending = ls.labels_or_regions, dj.file_ending
  local eopts = { labels_or_regions = lr, ignore_label = ls.ignore_label, file_ending = ending,
    threads = opts.threads, read = opts.read and function(p) return opts.read(p).data end or nil, chill = true }
  local out_root = paths.join(pred_dir, "postprocessed")
  local files = evaluate.list_files(pred_dir, ending)
  for _, f in ipairs(evaluate.list_files(ref_dir, ending)) do
    if not paths.isfile(paths.join(pred_dir, f)) then
      io.stderr:write("WARNING: Not all files in folder_ref were found in folder_predictions. Determining " ..
        "postprocessing should always be done on the entire dataset!\n")
      break
    end
  end
  local function eval_folder(folder)
    local o = setmetatable({ output_file = paths.join(folder, "summary.json") }, { __index = eopts })
    return evaluate.folder(ref_dir, folder, o)
  end
  local baseline_file = paths.join(pred_dir, "summary.json")
  if not paths.isfile(baseline_file) then eval_folder(pred_dir) end
  local read, write = opts.read or default_read, opts.write or default_write
  local function run_step(src, dst, step)
    paths.mkdirs(dst)
    for _, f in ipairs(files) do
      local img = read(paths.join(src, f))
      write(paths.join(dst, f), M.apply(img.data, { step }, opts), img)
    end
    return eval_folder(dst)
  end
  local steps = {}
  local temp = paths.join(out_root, "temp")
  fs.rmtree(temp)
  -- A: all foreground labels as one mask
  local step = { fn = R.pp_function, kwargs = { labels_or_regions = json.array(ls.info.foreground_labels) } }
  local here = paths.join(temp, "keep_largest_fg")
  local pp_res = run_step(pred_dir, here, step)
  local base = json.read(baseline_file)
  local source = pred_dir
  if R.accept_foreground(base, pp_res) then
    source = here
    steps[#steps + 1] = step
  end
  -- B: each label/region alone
  if R.per_class_step(#lr) then
    for _, r in ipairs(lr) do
      local key = evaluate.region_key(r)
      step = { fn = R.pp_function, kwargs = { labels_or_regions = r } }
      here = paths.join(temp, "keep_largest_perClassOrRegion")
      fs.rmtree(here)
      pp_res = run_step(source, here, step)
      base = json.read(paths.join(source, "summary.json"))
      if R.accept_class(base, pp_res, key) then
        local best = paths.join(temp, "keep_largest_perClassOrRegion_currentBest")
        fs.rmtree(best)
        assert(os.rename(here, best))
        source = best
        steps[#steps + 1] = step
      end
    end
  end
  paths.mkdirs(out_root)
  for _, f in ipairs(paths.listdir(source)) do
    local p = paths.join(source, f)
    if paths.isfile(p) then fs.copy_atomic(p, paths.join(out_root, f)) end
  end
  local baseline = json.read(baseline_file)
  local final = json.read(paths.join(out_root, "summary.json"))
  local fns, kws = json.array({}), json.array({})
  for i, s in ipairs(steps) do fns[i] = s.fn; kws[i] = s.kwargs end
  json.write(paths.join(pred_dir, "postprocessing.json"), {
    input_folder = without_paths(baseline), postprocessed = without_paths(final),
    postprocessing_fns = fns, postprocessing_kwargs = kws,
  })
  -- what nnUNetv2_apply_postprocessing and find_best_configuration read
  require("lunet.io.pickles").write_postprocessing(paths.join(pred_dir, "postprocessing.pkl"), steps)
  fs.rmtree(temp)
  if opts.keep_postprocessed == false then fs.rmtree(out_root) end
  return steps
end

return M
