-- `lunet verify DATASET`: nnU-Net's verify_dataset_integrity, reporting every problem at once.
local USAGE = [[
usage: lunet verify DATASET [--strict] [--quiet]

Checks a raw dataset (nnUNet_raw/DatasetXXX_Name) the way nnU-Net's verify_dataset_integrity does and lists every
problem found, each naming the case, the file and what is wrong. Nothing is modified.

  DATASET    id (4), DatasetXXX_Name, Name, or a path to the dataset folder
  --strict   origin/direction mismatches between a case's files are problems, not warnings
  --quiet    no progress lines
Exit status: 0 and "OK" when clean, 1 when problems were found, 2 on bad arguments.
]]

return {
  summary = "check a raw dataset's integrity (all problems at once; never modifies it)",
  usage = USAGE,
  run = function(args)
    local target, strict, quiet
    for _, a in ipairs(args) do
      if a == "-h" or a == "--help" then io.write(USAGE); return 0
      elseif a == "--strict" then strict = true
      elseif a == "--quiet" or a == "-q" then quiet = true
      elseif a:sub(1, 1) == "-" and not tonumber(a) then
        io.stderr:write("lunet verify: unknown option " .. a .. "\n" .. USAGE); return 2
      elseif target then
        io.stderr:write("lunet verify: one DATASET expected\n" .. USAGE); return 2
      else target = a end
    end
    if not target then io.stderr:write(USAGE); return 2 end
    local dataset = require "lunet.dataset"
    local log = nil
    if not quiet then log = function(line) io.stderr:write("\r" .. line .. "\27[K") end end
    local ok, problems, warnings = dataset.verify(target, { strict = strict, log = log })
    if log then io.stderr:write("\r\27[K") end
    for _, w in ipairs(warnings) do io.write("warning: ", w, "\n") end
    if ok then
      io.write("OK\n")
      return 0
    end
    for _, p in ipairs(problems) do io.write("error: ", p, "\n") end
    io.write(string.format("%d problem%s found\n", #problems, #problems == 1 and "" or "s"))
    return 1
  end,
}
