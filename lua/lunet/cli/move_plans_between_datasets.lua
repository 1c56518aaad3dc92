-- lunet move-plans-between-datasets: nnUNetv2_move_plans_between_datasets.
local args = require "lunet.cli.args"

local M = args.command({ summary = "copy a dataset's plans to another dataset (move_plans_between_datasets)" })

function M.parser()
  local p = args.parser("move-plans-between-datasets", [[
Copies the plans SOURCE_PLANS of dataset SOURCE to dataset TARGET as TARGET_PLANS (default: the same name, which
nnU-Net advises against for nnUNetPlans), as nnUNetv2_move_plans_between_datasets: dataset_name, plans_name, the
configurations' data_identifier and the image reader are the target's. Then preprocess the target with
`lunet preprocess TARGET -plans_name TARGET_PLANS` and train it with -p TARGET_PLANS (e.g. to pretrain one network
on several datasets).]])
  p:option("-s", "source dataset (id or name)"):argname("SOURCE"):count(1)
  p:option("-t", "target dataset (id or name)"):argname("TARGET"):count(1)
  p:option("-sp", "source plans identifier"):argname("SOURCE_PLANS"):count(1)
  p:option("-tp", "target plans identifier (default: SOURCE_PLANS)"):argname("TARGET_PLANS")
  return p
end

function M.run(argv)
  local r, code = args.parse_or_status(M.parser(), "move-plans-between-datasets", argv)
  if not r then return code end
  io.write(require("lunet.move_plans").run(r.s, r.t, r.sp, r.tp), "\n")
  return 0
end

return M
