--[[ rules/resenc_l.lua: nnU-Net's nnUNetPlannerResEncL (~24 GB VRAM target, e.g. RTX 4090) as overrides of
rules/resenc_m.lua. ]]
local m = require "lunet.rules.resenc_m"

return m.extend {
  name = "resenc_l",
  experiment_planner_used = "nnUNetPlannerResEncL",
  plans_name = "nnUNetResEncUNetLPlans",
  gpu_memory_gb = 24,
  reference_gb = 24,
  reference_val_3d = 2100000000,
  reference_val_2d = 380000000,
}
