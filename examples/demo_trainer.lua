-- The short schedule `make demo` trains with (LUNET_DEMO_EPOCHS / LUNET_DEMO_ITERS override it).
return {
  name = "demo_trainer",
  num_epochs = tonumber(os.getenv("LUNET_DEMO_EPOCHS") or "") or 10,
  num_iterations_per_epoch = tonumber(os.getenv("LUNET_DEMO_ITERS") or "") or 30,
  num_val_iterations_per_epoch = 5,
  save_every = 5,
}
