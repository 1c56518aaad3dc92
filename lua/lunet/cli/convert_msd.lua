-- `lunet convert-msd -i TASK_FOLDER [-overwrite_id N]`: nnUNetv2_convert_MSD_dataset.
local args = require "lunet.cli.args"

local M = args.command({ summary = "convert a Medical Segmentation Decathlon task to an nnU-Net v2 dataset" })

function M.parser()
  local p = args.parser("convert-msd", [[
Converts a Medical Segmentation Decathlon task folder (TaskXX_Name with imagesTr, labelsTr, imagesTs, dataset.json)
into nnUNet_raw/DatasetXXX_Name as nnUNetv2_convert_MSD_dataset does: 4-D images are split into one 3-D file per
channel (_0000, _0001, ...), 3-D images are copied as _0000, labels are copied, and dataset.json is rewritten to the
v2 form (labels name -> value, modality -> channel_names, file_ending ".nii.gz"; training/test lists dropped).
Files whose names start with "." or "_" (macOS metadata in the MSD archives) are skipped. Prints the new folder.]])
  p:argument("TASK_FOLDER", "the MSD task folder (or give it with -i)"):args("?")
  p:option("-i", "the MSD task folder, e.g. /data/Task05_Prostate (nnU-Net's spelling)"):argname("TASK_FOLDER")
  p:option("-overwrite_id", "target dataset id (default: the task number XX); it must not exist in nnUNet_raw, "
    .. "nnUNet_preprocessed or nnUNet_results (also --id)"):hidden_name("--id"):argname("N"):target("id")
    :convert(args.int("-overwrite_id", 0))
  p:option("-np", "accepted for nnU-Net's command lines; Lunet converts the cases one after another")
    :argname("N"):convert(args.int("-np", 1))
  p:flag("-q --quiet", "no progress lines")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "convert-msd", argv, function(r)
    if r.TASK_FOLDER and r.i then error("give the task folder once: as TASK_FOLDER or with -i", 0) end
    r.folder = r.TASK_FOLDER or r.i
    if not r.folder then error("missing the task folder (TASK_FOLDER or -i)", 0) end
    return r
  end)
  if not o then return code end
  local log = not o.quiet and function(line) io.stderr:write("\r" .. line .. "\27[K") end or nil
  local target = require("lunet.dataset").convert_msd(o.folder, { id = o.id, log = log })
  if log then io.stderr:write("\r\27[K") end
  io.write(target, "\n")
  return 0
end

return M
