-- Trainer family "training length": nnunetv2/training/nnUNetTrainer/variants/training_length/
-- nnUNetTrainer_Xepochs.py (num_epochs = X) and nnUNetTrainer_Xepochs_NoMirroring.py (num_epochs = X, no mirroring
-- in training and at inference). nnU-Net spells the one-epoch class nnUNetTrainer_1epoch.
local V = {}
for _, x in ipairs { 1, 5, 10, 20, 50, 100, 250, 500, 750, 2000, 4000, 8000 } do
  V[("nnUNetTrainer_%depochs"):format(x)] = { num_epochs = x }
end
V.nnUNetTrainer_1epoch = { num_epochs = 1 }
for _, x in ipairs { 250, 2000, 4000, 8000 } do
  V[("nnUNetTrainer_%depochs_NoMirroring"):format(x)] = { num_epochs = x, augmentation = { mirror = { axes = "none" } } }
end
return {
  family = "training length",
  about = "num_epochs = X (nnUNetTrainer_Xepochs.py, nnUNetTrainer_Xepochs_NoMirroring.py)",
  variants = V,
}
