-- lunet convert-old-dataset: nnUNetv2_convert_old_nnUNet_dataset.
local args = require "lunet.cli.args"

local M = args.command({ summary = "convert an nnU-Net v1 task folder to a v2 dataset (convert_old_nnUNet_dataset)" })

function M.parser()
  local p = args.parser("convert-old-dataset", [[
Converts an nnU-Net v1 raw task folder (TaskXXX_Name with imagesTr, labelsTr, optionally imagesTs, labelsTs,
imagesVal, labelsVal, and a v1 dataset.json) into nnUNet_raw/DatasetXXX_Name, as
nnUNetv2_convert_old_nnUNet_dataset: the image folders are copied as they are (v1 files already end in _0000),
dataset.json gets v2's channel_names (from modality), labels as name -> value and file_ending ".nii.gz".
TASK_FOLDER is a path (v2 does not know where v1 kept its tasks); the target is a name, and must not exist.]])
  p:argument("TASK_FOLDER", "the nnU-Net v1 task folder")
  p:argument("DATASET_NAME", "the new dataset's name, DatasetXXX_Name")
  return p
end

function M.run(argv)
  local r, code = args.parse_or_status(M.parser(), "convert-old-dataset", argv)
  if not r then return code end
  io.write(require("lunet.convert_old").run(r.TASK_FOLDER, r.DATASET_NAME), "\n")
  return 0
end

return M
