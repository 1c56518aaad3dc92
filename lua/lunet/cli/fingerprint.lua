-- `lunet fingerprint DATASET [-np N] [--clean]`: nnUNetv2_extract_fingerprint.
local USAGE = [[
usage: lunet fingerprint DATASET | -d DATASET [-np N] [--clean] [-q]

Extracts the dataset fingerprint (crop to nonzero, shapes, spacings, foreground intensity statistics) of the
training cases of DATASET (id, name or DatasetXXX_Name under nnUNet_raw) and writes
nnUNet_preprocessed/DatasetXXX/dataset_fingerprint.json. As nnU-Net, an existing file is kept unless --clean.

  -np N      worker threads (default 2)
  --clean    recompute even if the fingerprint exists
  -q         no progress bar
]]

local function fail(msg) io.stderr:write("lunet fingerprint: " .. msg .. "\n"); return 2 end

local M = { summary = "extract the dataset fingerprint (dataset_fingerprint.json)", usage = USAGE }

--- Parses args; returns opts or nil, exit code (plan_and_preprocess checks its options with it before any work).
function M.parse(args)
  local o = { threads = 2, clean = false, quiet = false }
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE); return nil, 0
    elseif a == "-np" or a == "--threads" then
      o.threads = math.tointeger(tonumber(args[i + 1] or ""))
      if not o.threads or o.threads < 1 then
        return nil, fail(a .. " needs a positive integer, got " .. tostring(args[i + 1]))
      end
      i = i + 1
    elseif a == "--clean" or a == "-clean" then o.clean = true
    elseif a == "-q" or a == "--quiet" then o.quiet = true
    elseif a == "-d" then -- nnU-Net style: -d 4
      if o.ds then return nil, fail("one DATASET expected") end
      o.ds = args[i + 1]; i = i + 1
      if not o.ds then return nil, fail("-d needs a dataset id or name") end
    elseif a:sub(1, 1) == "-" then return nil, fail("unknown option " .. a .. "\n" .. USAGE)
    elseif o.ds then return nil, fail("one DATASET expected")
    else o.ds = a end
    i = i + 1
  end
  if not o.ds then io.stderr:write(USAGE); return nil, 2 end
  return o
end

function M.run(args)
  local o, code = M.parse(args)
  if not o then return code end
  local fp = require("lunet.fingerprint").extract(o.ds, { threads = o.threads, overwrite = o.clean,
                                                          progress = not o.quiet })
  io.write(string.format("%d cases, median relative size after cropping %.4f\n", #fp.spacings,
    fp.median_relative_size_after_cropping))
  return 0
end

return M
