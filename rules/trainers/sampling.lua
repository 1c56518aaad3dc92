-- Trainer family "sampling": nnunetv2/training/nnUNetTrainer/variants/sampling/
-- nnUNetTrainer_probabilisticOversampling.py: each sample of a batch is forced foreground with probability
-- oversample_foreground_percent. The base class sets that percentage to the share the fixed scheme forces for the
-- plans' batch size (mean of [not i < round(B * (1 - 0.33))], 0.5 for B = 2): probabilistic_oversampling =
-- "match_fixed"; _033 and _010 set 0.33 and 0.1.
return {
  family = "sampling",
  about = "probabilistic foreground oversampling (variants/sampling/)",
  variants = {
    nnUNetTrainer_probabilisticOversampling = { probabilistic_oversampling = "match_fixed" },
    nnUNetTrainer_probabilisticOversampling_033 = { probabilistic_oversampling = true,
                                                    oversample_foreground_percent = 0.33 },
    nnUNetTrainer_probabilisticOversampling_010 = { probabilistic_oversampling = true,
                                                    oversample_foreground_percent = 0.1 },
  },
}
