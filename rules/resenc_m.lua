--[[ rules/resenc_m.lua: nnU-Net's nnUNetPlannerResEncM (residual-encoder U-Net, ~9-11 GB VRAM target)
as overrides of rules/default.lua. The 2d and 3d_fullres configurations reuse the default planner's preprocessed
data (data identifiers nnUNetPlans_2d / nnUNetPlans_3d_fullres); 3d_lowres gets its own. ]]
local base = require "lunet.rules.default"

return base.extend {
  name = "resenc_m",
  experiment_planner_used = "nnUNetPlannerResEncM",
  plans_name = "nnUNetResEncUNetMPlans",
  network_class_name = "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet",
  encoder_blocks_key = "n_blocks_per_stage",
  architecture_kind = "resenc",
  gpu_memory_gb = 8,
  reference_gb = 8,
  reference_val_3d = 680000000,
  reference_val_2d = 135000000,
  max_dataset_covered = 1,
  blocks_per_stage_encoder = { 1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6 },
  blocks_per_stage_decoder = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
  -- ResEnc planners shrink while the estimate itself exceeds the reference (no batch-size-2 correction)
  too_big = function(ctx, estimate, reference, ref_bs) return estimate > reference end,
  data_identifier = function(ctx, config_name)
    if config_name == "2d" or config_name == "3d_fullres" then return "nnUNetPlans_" .. config_name end
    return ctx.plans_name .. "_" .. config_name
  end,
}
