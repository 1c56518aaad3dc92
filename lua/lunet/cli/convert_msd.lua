-- `lunet convert-msd TASK_FOLDER [--id N]`: nnUNetv2_convert_MSD_dataset.
local USAGE = [[
usage: lunet convert-msd TASK_FOLDER [--id N]

Converts a Medical Segmentation Decathlon task folder (TaskXX_Name with imagesTr, labelsTr, imagesTs, dataset.json)
into nnUNet_raw/DatasetXXX_Name as nnUNetv2_convert_MSD_dataset does: 4-D images are split into one 3-D file per
channel (_0000, _0001, ...), 3-D images are copied as _0000, labels are copied, and dataset.json is rewritten to the
v2 form (labels name -> value, modality -> channel_names, file_ending ".nii.gz"; training/test lists dropped).
Files whose names start with "." or "_" (macOS metadata in the MSD archives) are skipped.

  --id N     target dataset id (default: the task number XX); it must not exist in nnUNet_raw,
             nnUNet_preprocessed or nnUNet_results
  -q         no progress lines
]]

return {
  summary = "convert a Medical Segmentation Decathlon task to an nnU-Net v2 dataset",
  usage = USAGE,
  run = function(args)
    local folder, id, quiet
    local i = 1
    while i <= #args do
      local a = args[i]
      if a == "-h" or a == "--help" then io.write(USAGE); return 0
      elseif a == "--id" or a == "-overwrite_id" then
        id = args[i + 1]
        if not id or not id:match("^%d+$") then io.stderr:write("lunet convert-msd: --id needs an integer\n"); return 2 end
        i = i + 1
      elseif a:match("^%-%-id=") then id = a:sub(6)
      elseif a == "-q" or a == "--quiet" then quiet = true
      elseif a:sub(1, 1) == "-" then io.stderr:write("lunet convert-msd: unknown option " .. a .. "\n" .. USAGE); return 2
      elseif folder then io.stderr:write("lunet convert-msd: one TASK_FOLDER expected\n" .. USAGE); return 2
      else folder = a end
      i = i + 1
    end
    if not folder then io.stderr:write(USAGE); return 2 end
    local log = not quiet and function(line) io.stderr:write("\r" .. line .. "\27[K") end or nil
    local target = require("lunet.dataset").convert_msd(folder, { id = id, log = log })
    if log then io.stderr:write("\r\27[K") end
    io.write(target, "\n")
    return 0
  end,
}
