-- `lunet preprocess DATASET [-c CFG ...] [-np N ...] [-plans_name NAME]`: nnUNetv2_preprocess.
local args = require "lunet.cli.args"

local M = args.command({
  summary = "preprocess a dataset (crop, normalise, resample, store) for the given configurations" })

local DEFAULT_CFGS = { "2d", "3d_fullres", "3d_lowres" }

--- -c and -np, declared on p (plan_and_preprocess declares the same ones).
function M.declare(p)
  p:option("-c", "configurations (default: 2d 3d_fullres 3d_lowres)"):args("+"):argname("CFG")
  p:option("-np", "threads, one number for all or one per configuration (default 2)"):args("+"):argname("N")
    :convert(args.int("-np", 1))
end

function M.parser()
  local p = args.parser("preprocess", [[
Preprocesses the training cases of DATASET (id, name or DatasetXXX_Name under nnUNet_raw) with the plans in
nnUNet_preprocessed/DatasetXXX/<plans name>.json: crop to nonzero, normalise, resample, foreground locations.
Writes nnUNet_preprocessed/DatasetXXX/<data_identifier>/lunet/<case>.lcs (chunked zstd case store, docs/formats.md)
and <case>.json (properties), then <case>.provenance.json: what the case was made from (plans, the configuration's
preprocessing fields, the raw files' sizes, times and hashes, the stored files' hashes, Lunet's case format). A case
is skipped only when all of it still matches, so an interrupted run resumes and a re-plan, a changed raw file or a
damaged stored file redoes the cases concerned. gt_segmentations/ is refreshed when a raw label changed. Cases in
nnU-Net's own format (.pkl/.b2nd) found in a folder are left as they are (nnU-Net keeps reading them); --clean
removes them.
2d, 3d_fullres, 3d_lowres and 3d_cascade_fullres missing from the plans are skipped with a note (as nnU-Net
does); any other configuration missing, or none of the list planned, is an error listing the plans' ones.]])
  p:argument("DATASET", "dataset id or name (or give it with -d)"):args("?")
  p:option("-d", "dataset id or name (nnU-Net's spelling)"):argname("DATASET")
  M.declare(p)
  p:option("-plans_name", "plans identifier (default nnUNetPlans; also -pl)"):hidden_name("-pl --plans-name")
    :argname("NAME")
  p:flag("--clean", "remove each configuration folder's contents and gt_segmentations first, redo every case")
    :hidden_name("-clean")
  p:flag("--rehash", "hash every raw file, even one whose size and modification time match the record")
  p:flag("-v --verbose", "one line per redone case with the reason")
  p:flag("-q", "no progress bar")
  return p
end

--- The configurations and thread counts of a parse result: -np gives one count for all or one per configuration.
function M.configurations_and_threads(r)
  local cfgs, np = r.c or DEFAULT_CFGS, r.np or {}
  if #np > 1 and #np ~= #cfgs then
    error(string.format("-np has %d numbers for %d configurations", #np, #cfgs), 0)
  end
  return cfgs, np
end

--- Parses args; returns opts or nil, exit code.
function M.parse(argv)
  return args.parse_or_status(M.parser(), "preprocess", argv, function(r)
    if r.DATASET and r.d then error("one DATASET expected", 0) end
    local ds = r.DATASET or r.d
    if not ds then error("missing DATASET", 0) end
    local cfgs, np = M.configurations_and_threads(r)
    return { ds = ds, cfgs = cfgs, np = np, plans_name = r.plans_name or "nnUNetPlans", quiet = r.q or false,
      clean = r.clean or false, rehash = r.rehash or false, verbose = r.verbose or false }
  end)
end

--- The configuration names of plans, sorted (for messages that list them).
function M.configurations(plans)
  local names = {}
  for k in pairs(plans.configurations or {}) do names[#names + 1] = k end
  table.sort(names)
  return names
end

local function fail(msg) io.stderr:write("lunet preprocess: " .. msg .. "\n"); return 2 end

--- "3d_fullres: 14 cases preprocessed, 0 up to date, 14 redone because the configuration's spacing changed -> dir",
--- with the distinct reasons counted when there are several, then notes on foreign cases and gt_segmentations.
function M.summary_line(cfg, s)
  local line = string.format("%s: %d cases preprocessed, %d up to date", cfg, s.done, s.skipped)
  if (s.redone or 0) > 0 then
    local count, order = {}, {}
    for _, r in ipairs(s.reasons or {}) do
      if not count[r.reason] then order[#order + 1] = r.reason; count[r.reason] = 0 end
      count[r.reason] = count[r.reason] + 1
    end
    if #order == 1 then
      line = line .. string.format(", %d redone because %s", s.redone, order[1])
    else
      local parts = {}
      for _, r in ipairs(order) do parts[#parts + 1] = string.format("%d because %s", count[r], r) end
      line = line .. string.format(", %d redone (%s)", s.redone, table.concat(parts, "; "))
    end
  end
  line = line .. " -> " .. s.folder
  if (s.foreign or 0) > 0 then
    line = line .. string.format("\n%s: %d cases in nnU-Net's own format (.pkl/.b2nd, no Lunet record) left as they "
      .. "are in %s (foreign: Lunet neither reads nor removes them; --clean removes them)", cfg, s.foreign,
      s.nnunet_folder or s.folder)
  end
  if (s.gt_refreshed or 0) > 0 then
    line = line .. string.format("\ngt_segmentations: %d labels copied (new or changed)", s.gt_refreshed)
  end
  return line
end

function M.preprocess(o)
  local paths = require "lunet.util.paths"
  local planner = require "lunet.planner"
  local dataset = require "lunet.dataset"
  local pp = require "lunet.preprocess"
  local ds = dataset.open(o.ds)
  local pre = paths.join(paths.preprocessed(), ds.name)
  local pfile = paths.join(pre, o.plans_name .. ".json")
  if not paths.isfile(pfile) then
    return fail(pfile .. " is missing: run `lunet plan " .. o.ds .. "` first")
  end
  local plans = planner.read(pfile)
  -- nnU-Net's planner may leave out these (2d or 3d for some datasets, 3d_lowres when fullres is small enough), so
  -- the default list skips them; any other name, or a list with nothing planned, is a mistake to report
  local may_be_absent = { ["2d"] = true, ["3d_fullres"] = true, ["3d_lowres"] = true, ["3d_cascade_fullres"] = true }
  local known, found = M.configurations(plans), 0
  for _, cfg in ipairs(o.cfgs) do
    if plans.configurations[cfg] then found = found + 1
    elseif not may_be_absent[cfg] then
      error(string.format("configuration %s is not in %s (its configurations: %s)", cfg, pfile,
        table.concat(known, ", ")), 0)
    end
  end
  if found == 0 then
    error(string.format("none of the configurations %s is in %s (its configurations: %s)", table.concat(o.cfgs, ", "),
      pfile, table.concat(known, ", ")), 0)
  end
  for k, cfg in ipairs(o.cfgs) do
    if not plans.configurations[cfg] then
      io.stderr:write(string.format("lunet preprocess: configuration %s not found in %s, skipping\n", cfg, pfile))
    else
      local log = o.verbose and function(line) io.write(line, "\n") end or nil
      -- quiet: no bar; otherwise nil, and the bar shows when stderr is a terminal
      local progress = nil
      if o.quiet then progress = false end
      local sum = pp.run(ds, plans, cfg, { threads = o.np[k] or o.np[1] or 2, progress = progress,
        plans_name = o.plans_name, clean = o.clean, rehash = o.rehash, log = log })
      io.write(M.summary_line(cfg, sum[cfg]), "\n")
    end
  end
  return 0
end

function M.run(argv)
  local o, code = M.parse(argv)
  if not o then return code end
  local ok, res = pcall(M.preprocess, o)
  if not ok then return fail(tostring(res)) end
  return res
end

return M
