-- Trainer family "defaults": nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py itself. A trainer family file
-- returns { family =, about =, variants = { <trainer name> = <overrides of rules/default.lua's trainer table> } };
-- `lunet train ... -tr <trainer name>` finds the variant by name (docs/training.md).
return {
  family = "defaults",
  about = "nnU-Net's default trainer (rules/default.lua's trainer and augmentation tables)",
  variants = {
    nnUNetTrainer = {},
  },
}
