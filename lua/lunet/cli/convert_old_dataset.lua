-- lunet convert-old-dataset: nnUNetv2_convert_old_nnUNet_dataset.
local USAGE = [[
usage: lunet convert-old-dataset TASK_FOLDER DatasetXXX_Name

Converts an nnU-Net v1 raw task folder (TaskXXX_Name with imagesTr, labelsTr, optionally imagesTs, labelsTs,
imagesVal, labelsVal, and a v1 dataset.json) into nnUNet_raw/DatasetXXX_Name, as
nnUNetv2_convert_old_nnUNet_dataset: the image folders are copied as they are (v1 files already end in _0000),
dataset.json gets v2's channel_names (from modality), labels as name -> value and file_ending ".nii.gz".
TASK_FOLDER is a path (v2 does not know where v1 kept its tasks); the target is a name, and must not exist.
]]

local function run(args)
  if args[1] == "-h" or args[1] == "--help" then io.write(USAGE) return 0 end
  if #args ~= 2 or args[1]:sub(1, 1) == "-" or args[2]:sub(1, 1) == "-" then io.stderr:write(USAGE) return 2 end
  io.write(require("lunet.convert_old").run(args[1], args[2]), "\n")
  return 0
end

return { summary = "convert an nnU-Net v1 task folder to a v2 dataset (convert_old_nnUNet_dataset)", usage = USAGE,
         run = run }
