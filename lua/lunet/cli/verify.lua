-- `lunet verify DATASET`: nnU-Net's verify_dataset_integrity, reporting every problem at once.
local args = require "lunet.cli.args"

local M = args.command({ summary = "check a raw dataset's integrity (all problems at once; never modifies it)" })

function M.parser()
  local p = args.parser("verify", [[
Checks a raw dataset (nnUNet_raw/DatasetXXX_Name) the way nnU-Net's verify_dataset_integrity does and lists every
problem found, each naming the case, the file and what is wrong. Nothing is modified.
Exit status: 0 and "OK" when clean, 1 when problems were found, 2 on bad arguments.]])
  p:argument("DATASET", "id (4), DatasetXXX_Name, Name, or a path to the dataset folder")
  p:flag("--strict", "origin/direction mismatches between a case's files are problems, not warnings")
  p:flag("-q --quiet", "no progress lines")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "verify", argv)
  if not o then return code end
  local dataset = require "lunet.dataset"
  local log = nil
  if not o.quiet then log = function(line) io.stderr:write("\r" .. line .. "\27[K") end end
  local ok, problems, warnings = dataset.verify(o.DATASET, { strict = o.strict, log = log })
  if log then io.stderr:write("\r\27[K") end
  for _, w in ipairs(warnings) do io.write("warning: ", w, "\n") end
  if ok then
    io.write("OK\n")
    return 0
  end
  for _, p in ipairs(problems) do io.write("error: ", p, "\n") end
  io.write(string.format("%d problem%s found\n", #problems, #problems == 1 and "" or "s"))
  return 1
end

return M
