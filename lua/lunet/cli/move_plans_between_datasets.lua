-- lunet move-plans-between-datasets: nnUNetv2_move_plans_between_datasets.
local USAGE = [[
usage: lunet move-plans-between-datasets -s SOURCE -t TARGET -sp SOURCE_PLANS [-tp TARGET_PLANS]

Copies the plans SOURCE_PLANS of dataset SOURCE to dataset TARGET as TARGET_PLANS (default: the same name, which
nnU-Net advises against for nnUNetPlans), as nnUNetv2_move_plans_between_datasets: dataset_name, plans_name, the
configurations' data_identifier and the image reader are the target's. Then preprocess the target with
`lunet preprocess TARGET -plans_name TARGET_PLANS` and train it with -p TARGET_PLANS (e.g. to pretrain one network
on several datasets).
  -s / -t     source and target dataset (id or name)
  -sp / -tp   source and target plans identifier
]]

local function run(args)
  local o = {}
  local i = 1
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-s" or a == "-t" or a == "-sp" or a == "-tp" then
      if args[i + 1] == nil then io.stderr:write("lunet move-plans-between-datasets: " .. a .. " needs a value\n") return 2 end
      o[a:sub(2)] = args[i + 1]
      i = i + 1
    else io.stderr:write("lunet move-plans-between-datasets: unexpected argument " .. a .. "\n" .. USAGE) return 2 end
    i = i + 1
  end
  if not (o.s and o.t and o.sp) then io.stderr:write(USAGE) return 2 end
  io.write(require("lunet.move_plans").run(o.s, o.t, o.sp, o.tp), "\n")
  return 0
end

return { summary = "copy a dataset's plans to another dataset (move_plans_between_datasets)", usage = USAGE,
         run = run }
