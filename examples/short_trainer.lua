-- A trainer file: `lunet train DATASET 2d 0 -tr examples/short_trainer.lua` (or `-tr short_trainer` from its
-- folder, or with it in $LUNET_TRAINERS). It returns overrides
-- of rules/default.lua's trainer table, the way nnU-Net users subclass nnUNetTrainer; `name` names
-- the results folder (short_trainer__nnUNetPlans__2d).
return {
  name = "short_trainer",
  num_epochs = 20,                 -- nnU-Net: 1000
  num_iterations_per_epoch = 50,   -- nnU-Net: 250
  initial_lr = 1e-2,
  loss = { weight_ce = 1, weight_dice = 2 },   -- lean on Dice more than nnU-Net's 1:1
  augmentation = { gamma = { p = 0.1 } },       -- milder than the default
}
