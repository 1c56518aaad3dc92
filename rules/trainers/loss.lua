-- Trainer family "loss": nnunetv2/training/nnUNetTrainer/variants/loss/. Lunet's step computes
-- weight_ce * CE + weight_dice * MemoryEfficientSoftDice (BCE for region datasets) with deep supervision, so:
--   nnUNetTrainerCELoss: RobustCrossEntropyLoss only (nnU-Net refuses region datasets here; Lunet would train BCE)
--   nnUNetTrainerDiceLoss: MemoryEfficientSoftDiceLoss only (smooth 1e-5, do_bg only for regions)
--   nnUNetTrainerDiceCELoss_noSmooth: DC_and_CE_loss with smooth = 0
-- Not shipped: nnUNetTrainerTopk10Loss and its kin (TopKLoss is not in Lunet's loss).
return {
  family = "loss",
  about = "CE only, Dice only, Dice+CE without smoothing (variants/loss/)",
  variants = {
    nnUNetTrainerCELoss = { loss = { weight_ce = 1, weight_dice = 0 } },
    nnUNetTrainerCELoss_5epochs = { num_epochs = 5, loss = { weight_ce = 1, weight_dice = 0 } },
    nnUNetTrainerDiceLoss = { loss = { weight_ce = 0, weight_dice = 1, dice_smooth = 1e-5 } },
    nnUNetTrainerDiceCELoss_noSmooth = { loss = { weight_ce = 1, weight_dice = 1, dice_smooth = 0 } },
  },
}
