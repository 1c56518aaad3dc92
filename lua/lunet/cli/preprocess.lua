-- `lunet preprocess DATASET [-c CFG ...] [-np N ...] [-plans_name NAME]`: nnUNetv2_preprocess.
local USAGE = [==[
usage: lunet preprocess DATASET [-c 2d 3d_fullres 3d_lowres] [-np N [N ...]] [-plans_name NAME] [-q]

Preprocesses the training cases of DATASET (id, name or DatasetXXX_Name under nnUNet_raw) with the plans in
nnUNet_preprocessed/DatasetXXX/<plans name>.json: crop to nonzero, normalise, resample, foreground locations.
Writes nnUNet_preprocessed/DatasetXXX/<data_identifier>/<case>.lcs (chunked zstd case store, docs/formats.md)
and <case>.json (properties). Cases already complete and valid are skipped, so an interrupted run resumes.
2d, 3d_fullres, 3d_lowres and 3d_cascade_fullres missing from the plans are skipped with a note (as nnU-Net
does); any other configuration missing, or none of the list planned, is an error listing the plans' ones.

  -c CFG ...         configurations (default: 2d 3d_fullres 3d_lowres)
  -np N ...          threads, one number for all or one per configuration (default 2)
  -plans_name NAME   plans identifier (default nnUNetPlans; -pl also accepted)
  -q                 no progress bar
]==]

local function fail(msg) io.stderr:write("lunet preprocess: " .. msg .. "\n"); return 2 end

local M = {
  summary = "preprocess a dataset (crop, normalise, resample, store) for the given configurations",
  usage = USAGE,
}

--- Parses args; returns opts or nil, exit code.
function M.parse(args)
  local o = { cfgs = nil, np = {}, plans_name = "nnUNetPlans", quiet = false }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE); return nil, 0
    elseif a == "-c" then
      o.cfgs = {}
      while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do o.cfgs[#o.cfgs + 1] = args[i + 1]; i = i + 1 end
      if #o.cfgs == 0 then return nil, fail("-c needs at least one configuration") end
    elseif a == "-np" then
      -- every word up to the next option is a count: "-np abc" is refused here, not taken as DATASET
      while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do
        local n = math.tointeger(tonumber(args[i + 1]))
        if not n or n < 1 then return nil, fail("-np needs positive integers, got " .. args[i + 1]) end
        o.np[#o.np + 1] = n; i = i + 1
      end
      if #o.np == 0 then return nil, fail("-np needs a positive integer") end
    elseif a == "-plans_name" or a == "-pl" or a == "--plans-name" then
      o.plans_name = args[i + 1]; i = i + 1
      if not o.plans_name then return nil, fail(a .. " needs a value") end
    elseif a == "-q" then o.quiet = true
    elseif a == "-d" then -- nnU-Net style: -d 4
      o.ds = args[i + 1]; i = i + 1
    elseif a:sub(1, 1) == "-" then return nil, fail("unknown option " .. a .. "\n" .. USAGE)
    elseif o.ds then return nil, fail("one DATASET expected")
    else o.ds = a end
    i = i + 1
  end
  if not o.ds then io.stderr:write(USAGE); return nil, 2 end
  o.cfgs = o.cfgs or { "2d", "3d_fullres", "3d_lowres" }
  if #o.np > 1 and #o.np ~= #o.cfgs then
    return nil, fail(string.format("-np has %d numbers for %d configurations", #o.np, #o.cfgs))
  end
  for _, n in ipairs(o.np) do if n < 1 then return nil, fail("-np must be >= 1") end end
  return o
end

--- The configuration names of plans, sorted (for messages that list them).
function M.configurations(plans)
  local names = {}
  for k in pairs(plans.configurations or {}) do names[#names + 1] = k end
  table.sort(names)
  return names
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
      local sum = pp.run(ds, plans, cfg, { threads = o.np[k] or o.np[1] or 2, progress = not o.quiet and nil or false })
      local s = sum[cfg]
      io.write(string.format("%s: %d cases preprocessed, %d already done -> %s\n", cfg, s.done, s.skipped, s.folder))
    end
  end
  return 0
end

function M.run(args)
  local o, code = M.parse(args)
  if not o then return code end
  local ok, res = pcall(M.preprocess, o)
  if not ok then return fail(tostring(res)) end
  return res
end

return M
