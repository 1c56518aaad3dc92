-- lunet.train: the trainer's entry point under the pipeline's verb (`lunet.train(plans, cfg, fold, opts)` or
-- `lunet.train{dataset=, configuration=, fold=, ...}`); see lunet.trainer.
return require "lunet.trainer"
