-- Trainer family "lr schedule": nnunetv2/training/nnUNetTrainer/variants/lr_schedule/.
--   nnUNetTrainerCosAnneal: CosineAnnealingLR(optimizer, T_max = num_epochs), stepped with the epoch number
--   (closed form: initial_lr * (1 + cos(pi * epoch / num_epochs)) / 2); SGD as nnUNetTrainer.
--   nnUNetTrainer_warmup: warmup_duration_whole_net = 50 epochs of Lin_incr_LRScheduler (initial_lr / 50 * (epoch + 1)),
--   then PolyLRScheduler_offset (poly over the remaining epochs), the same optimizer and momentum; num_epochs 1000.
return {
  family = "lr schedule",
  about = "cosine annealing or a linear warm-up instead of poly (variants/lr_schedule/)",
  variants = {
    nnUNetTrainerCosAnneal = { lr_schedule = "cosine" },
    nnUNetTrainer_warmup = { lr_schedule = "warmup_poly", warmup_epochs = 50, num_epochs = 1000 },
  },
}
