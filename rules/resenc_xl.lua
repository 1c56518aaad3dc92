--[[ rules/resenc_xl.lua: nnU-Net's nnUNetPlannerResEncXL (~40 GB VRAM target, e.g. A100 40GB) as overrides of
rules/resenc_m.lua. ]]
local m = require "lunet.rules.resenc_m"

return m.extend {
  name = "resenc_xl",
  experiment_planner_used = "nnUNetPlannerResEncXL",
  plans_name = "nnUNetResEncUNetXLPlans",
  gpu_memory_gb = 40,
  reference_gb = 40,
  reference_val_3d = 3600000000,
  reference_val_2d = 560000000,
}
