-- Trainer family "data augmentation": nnunetv2/training/nnUNetTrainer/variants/data_augmentation/.
--   nnUNetTrainerNoMirroring: mirror_axes = None in training, inference_allowed_mirroring_axes = None.
--   nnUNetTrainer_onlyMirror01: mirror axes (0,) for 2d, (0, 1) for 3d, in training and at inference.
--   nnUNetTrainerNoDA: the validation transforms for training, initial patch = patch, no mirroring at inference.
--   nnUNetTrainer_noDummy2DDA: never dummy 2D (3d patches rotate +-30 degrees about every axis): the aspect
--   threshold is set out of reach.
-- Not shipped: nnUNetTrainerDA5 (its transforms -- brightness gradients, local gamma, sharpening, median filter,
-- blank rectangles, Rician noise -- are not in lunet.augment), nnUNetTrainerDAOrd0 and
-- nnUNetTrainer_onlyMirror01_DASegOrd0 (spline order 0 of the data is not a lunet.augment option).
local only01 = { ["2d"] = { 0 }, ["3d"] = { 0, 1 } }
return {
  family = "data augmentation",
  about = "mirroring and augmentation switches (variants/data_augmentation/)",
  variants = {
    nnUNetTrainerNoMirroring = { augmentation = { mirror = { axes = "none" } } },
    nnUNetTrainer_onlyMirror01 = { augmentation = { mirror = { axes = only01 } } },
    nnUNetTrainer_onlyMirror01_1500ep = { num_epochs = 1500, augmentation = { mirror = { axes = only01 } } },
    nnUNetTrainer_noDummy2DDA = { augmentation = { dummy_2d_aspect = 1e9 } },
    nnUNetTrainerNoDA = { augmentation = { enabled = false, mirror = { axes = "none" } } },
  },
}
