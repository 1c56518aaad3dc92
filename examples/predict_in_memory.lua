-- Predict one image held in memory, no files written: what a REPL session does.
--   lua5.4 examples/predict_in_memory.lua MODEL_FOLDER IMAGE [LABEL]
-- MODEL_FOLDER is a trained results folder (.../<trainer>__<plans>__<cfg>), e.g. from pipeline.lua.
-- In the REPL:
--   > lunet = require "lunet"
--   > models = lunet.predict.load_models{model_dir = "...", configuration = "2d", folds = {0}}
--   > seg = lunet.predict(models, lunet.io.image.read("case_0000.nii.gz"))
local lunet = require "lunet"
local model_dir, image_path, label_path = arg[1], arg[2], arg[3]
if not (model_dir and image_path) then
  io.stderr:write("usage: lua5.4 examples/predict_in_memory.lua MODEL_FOLDER IMAGE [LABEL]\n")
  os.exit(2)
end

-- the folder name <trainer>__<plans>__<configuration> says which configuration it holds
local _, _, configuration = lunet.util.paths.parse_model_identifier(lunet.util.paths.basename(model_dir))
local models = lunet.predict.load_models{model_dir = model_dir, configuration = configuration, folds = {0}}
local img = lunet.io.image.read(image_path)          -- a tensor plus geometry, in memory
local seg = lunet.predict(models, img)            -- (Z, Y, X) labels in the image's own grid
local counts = {}
for _, v in ipairs(seg:flat()) do counts[v] = (counts[v] or 0) + 1 end
print(string.format("segmentation %s: %d background, %d foreground voxels", table.concat(seg.shape, "x"),
  counts[0] or 0, (#seg:flat()) - (counts[0] or 0)))
if label_path then
  local ref = lunet.io.image.read(label_path).data
  local m = lunet.evaluate.case(ref, seg:reshape(ref.shape), {1})
  print(string.format("Dice against %s: %.4f", label_path, m["1"].Dice))
end
