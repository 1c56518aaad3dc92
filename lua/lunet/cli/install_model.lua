-- lunet install-model: nnUNetv2_install_pretrained_model_from_zip.
local USAGE = [[
usage: lunet install-model FILE.zip

Extracts a model zip (made by `lunet export-model` or nnUNetv2_export_model_to_zip) into nnUNet_results.
]]

local M = { summary = "install a model zip into nnUNet_results (nnUNetv2_install_pretrained_model_from_zip)",
            usage = USAGE }

function M.run(args)
  if args[1] == "-h" or args[1] == "--help" then io.write(USAGE) return 0 end
  local zip = args[1]
  if zip == "-i" then zip = args[2] end -- nnU-Net spells it install_pretrained_model_from_zip ZIP
  if not zip or #args > (args[1] == "-i" and 2 or 1) then io.stderr:write(USAGE) return 2 end
  local files = require("lunet.model_sharing").install(zip)
  io.write(("installed %d files from %s into %s\n"):format(#files, zip, require("lunet.util.paths").results()))
  return 0
end

return M
