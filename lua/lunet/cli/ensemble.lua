-- lunet ensemble: nnUNetv2_ensemble.
local USAGE = [[
usage: lunet ensemble -i DIR1 DIR2 ... -o OUT [-np N] [--save_npz] [-dataset_json D] [-plans_json P]

Averages the probabilities (<case>.npz, key "probabilities") of the same cases in every input folder,
converts them to segmentations (argmax, or regions_class_order for region-based datasets) and writes
OUT/<case><file_ending> with the geometry of the first folder's <case>.json properties or <case>
segmentation. --save_npz also writes the averaged probabilities. dataset.json/plans.json default to DIR1's.
]]

local function run(args)
  local o, dirs = {}, {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-i" then
      while args[i + 1] and args[i + 1]:sub(1, 1) ~= "-" do dirs[#dirs + 1] = args[i + 1]; i = i + 1 end
    elseif a == "-o" then o.out = args[i + 1]; i = i + 1
    elseif a == "-np" then o.threads = math.tointeger(tonumber(args[i + 1])) or error("-np needs an integer", 0); i = i + 1
    elseif a == "--save_npz" then o.save_npz = true
    elseif a == "-dataset_json" then o.dataset_json = args[i + 1]; i = i + 1
    elseif a == "-plans_json" then o.plans_json = args[i + 1]; i = i + 1
    else io.stderr:write("lunet ensemble: unknown argument " .. a .. "\n" .. USAGE) return 2 end
    i = i + 1
  end
  if #dirs == 0 or not o.out then io.stderr:write(USAGE) return 2 end
  local cases = require("lunet.ensemble").folders(dirs, o.out, o)
  io.write(string.format("ensembled %d case(s) from %d folder(s) into %s\n", #cases, #dirs, o.out))
  return 0
end

return { summary = "average npz probabilities of several prediction folders (nnUNetv2_ensemble)", usage = USAGE, run = run }
