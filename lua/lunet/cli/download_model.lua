-- lunet download-model: nnUNetv2_download_pretrained_model_by_url.
local args = require "lunet.cli.args"

local M = args.command({
  summary = "download a model zip by URL and install it into nnUNet_results (nnUNetv2_download_pretrained_model_by_url)" })

function M.parser()
  local p = args.parser("download-model", [[
Downloads a model zip (made by `lunet export-model` or nnUNetv2_export_model_to_zip) with curl and installs it into
nnUNet_results, as install-model does. The download is removed afterwards.]])
  p:argument("URL", "where the zip is (http, https or file URL)")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "download-model", argv, function(r) return { url = r.URL } end)
  if not o then return code end
  local files = require("lunet.model_sharing").download_and_install(o.url)
  io.write(("installed %d files from %s into %s\n"):format(#files, o.url, require("lunet.util.paths").results()))
  return 0
end

return M
