-- The nnU-Net workflow step by step from Lua, on the bundled brain-mask dataset.
--   lua5.4 examples/pipeline.lua [WORK_DIR]
-- LUNET_EXAMPLE_EPOCHS / LUNET_EXAMPLE_ITERS shorten training (the specs run this with 1 x 2).
local lunet = require "lunet"
local paths = lunet.util.paths
local work = arg[1] or "/tmp/lunet-example"
local epochs = tonumber(os.getenv("LUNET_EXAMPLE_EPOCHS") or "5")
local iters = tonumber(os.getenv("LUNET_EXAMPLE_ITERS") or "20")

-- 1. nnU-Net's three folders, set from Lua (or export nnUNet_raw & co. before starting).
paths.set_roots{raw = work .. "/raw", preprocessed = work .. "/preprocessed", results = work .. "/results"}
os.execute("mkdir -p " .. work .. "/raw")
local raw = lunet.demo.make_dataset(paths.raw(), {step = tonumber(os.getenv("LUNET_EXAMPLE_STEP") or "4")})

-- 2. The dataset: cases, channels, labels; verify reports every problem at once.
local ds = lunet.dataset.open(raw)
print(string.format("%s: %d training cases, channels %s", ds.name, #ds.cases, table.concat(ds.channels or {}, ",")))
local ok, problems = lunet.dataset.verify(ds)
assert(ok, problems and table.concat(problems, "\n"))

-- 3. Fingerprint and plans (the default rules; see custom_rules.lua for your own).
local fp = lunet.fingerprint(ds)
local plans = lunet.plan(fp, {dataset_json = ds.json, dataset_name = ds.name})
local pre = paths.join(paths.preprocessed(), ds.name)
lunet.planner.write(plans, paths.join(pre, "nnUNetPlans.json"))
lunet.util.json.write(paths.join(pre, "dataset.json"), ds.json)
local cfg = lunet.planner.configuration(plans, "2d")
print(string.format("2d: patch %s, batch %d, %d stages", table.concat(cfg.patch_size, "x"), cfg.batch_size,
  cfg.architecture.arch_kwargs.n_stages))

-- 4. Preprocess, train fold 0 with a short schedule, validate.
lunet.preprocess(ds, plans, "2d")
local run = lunet.train{dataset = ds.name, configuration = "2d", fold = 0, epochs = epochs, iterations = iters,
                        val_iterations = 2, progress = false}
print("fold 0 results: " .. run.folder)

-- 5. Predict the held-out images and evaluate against their labels.
local out = work .. "/predictions"
lunet.predict.folder{input = raw .. "/imagesTs", output = out, dataset = ds.name, configuration = "2d",
                     folds = {0}, progress = false}
local summary = lunet.evaluate.folder(raw .. "/labelsTs", out, {dataset_json = ds.json})
print(string.format("held-out Dice (brain): %.4f", summary.mean["1"].Dice))
