-- `lunet fingerprint DATASET [-np N] [--clean]`: nnUNetv2_extract_fingerprint.
local USAGE = [[
usage: lunet fingerprint DATASET [-np N] [--clean] [-q]

Extracts the dataset fingerprint (crop to nonzero, shapes, spacings, foreground intensity statistics) of the
training cases of DATASET (id, name or DatasetXXX_Name under nnUNet_raw) and writes
nnUNet_preprocessed/DatasetXXX/dataset_fingerprint.json. As nnU-Net, an existing file is kept unless --clean.

  -np N      worker threads (default 2)
  --clean    recompute even if the fingerprint exists
  -q         no progress bar
]]

local function fail(msg) io.stderr:write("lunet fingerprint: " .. msg .. "\n"); return 2 end

return {
  summary = "extract the dataset fingerprint (dataset_fingerprint.json)",
  usage = USAGE,
  run = function(args)
    local ds, threads, clean, quiet = nil, 2, false, false
    local i = 1
    while i <= #args do
      local a = args[i]
      if a == "-h" or a == "--help" then io.write(USAGE); return 0
      elseif a == "-np" or a == "--threads" then
        threads = math.tointeger(tonumber(args[i + 1] or ""))
        if not threads or threads < 1 then return fail(a .. " needs a positive integer") end
        i = i + 1
      elseif a == "--clean" or a == "-clean" then clean = true
      elseif a == "-q" or a == "--quiet" then quiet = true
      elseif a:sub(1, 1) == "-" then return fail("unknown option " .. a .. "\n" .. USAGE)
      elseif ds then return fail("one DATASET expected")
      else ds = a end
      i = i + 1
    end
    if not ds then io.stderr:write(USAGE); return 2 end
    local fp = require("lunet.fingerprint").extract(ds, { threads = threads, overwrite = clean,
                                                          progress = not quiet })
    io.write(string.format("%d cases, median relative size after cropping %.4f\n", #fp.spacings,
      fp.median_relative_size_after_cropping))
    return 0
  end,
}
