-- `lunet fingerprint DATASET [-np N] [--clean]`: nnUNetv2_extract_fingerprint.
local args = require "lunet.cli.args"

local M = args.command({ summary = "extract the dataset fingerprint (dataset_fingerprint.json)" })

function M.parser()
  local p = args.parser("fingerprint", [[
Extracts the dataset fingerprint (crop to nonzero, shapes, spacings, foreground intensity statistics) of the
training cases of DATASET (id, name or DatasetXXX_Name under nnUNet_raw) and writes
nnUNet_preprocessed/DatasetXXX/dataset_fingerprint.json. As nnU-Net, an existing file is kept unless --clean.]])
  p:argument("DATASET", "dataset id or name (or give it with -d)"):args("?")
  p:option("-d", "dataset id or name (nnU-Net's spelling)"):argname("DATASET")
  p:option("-np", "worker threads (default 2; also --threads)"):hidden_name("--threads"):argname("N")
    :convert(args.int("-np", 1))
  p:flag("--clean", "recompute even if the fingerprint exists"):hidden_name("-clean")
  p:flag("-q --quiet", "no progress bar")
  return p
end

--- Parses args; returns opts or nil, exit code (plan_and_preprocess checks its options with it before any work).
function M.parse(argv)
  return args.parse_or_status(M.parser(), "fingerprint", argv, function(r)
    if r.DATASET and r.d then error("one DATASET expected", 0) end
    local ds = r.DATASET or r.d
    if not ds then error("missing DATASET", 0) end
    return { ds = ds, threads = r.np or 2, clean = r.clean or false, quiet = r.quiet or false }
  end)
end

--- Extracts the fingerprint of o.ds with the options of M.parse; returns 0.
function M.extract(o)
  local fp = require("lunet.fingerprint").extract(o.ds, { threads = o.threads, overwrite = o.clean,
                                                          progress = not o.quiet })
  io.write(string.format("%d cases, median relative size after cropping %.4f\n", #fp.spacings,
    fp.median_relative_size_after_cropping))
  return 0
end

function M.run(argv)
  local o, code = M.parse(argv)
  if not o then return code end
  return M.extract(o)
end

return M
