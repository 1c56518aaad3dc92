-- Trainer family "network architecture": nnunetv2/training/nnUNetTrainer/variants/network_architecture/.
--   nnUNetTrainerNoDeepSupervision: enable_deep_supervision = False (the loss sees the full-resolution output only).
-- Not shipped: nnUNetTrainerBN (batch norm is not in Lunet's network).
return {
  family = "network architecture",
  about = "deep supervision off (variants/network_architecture/)",
  variants = {
    nnUNetTrainerNoDeepSupervision = { enable_deep_supervision = false },
  },
}
