-- lunet install-model: nnUNetv2_install_pretrained_model_from_zip.
local args = require "lunet.cli.args"

local M = args.command({
  summary = "install a model zip into nnUNet_results (nnUNetv2_install_pretrained_model_from_zip)" })

function M.parser()
  local p = args.parser("install-model", [[
Extracts a model zip (made by `lunet export-model` or nnUNetv2_export_model_to_zip) into nnUNet_results.]])
  p:argument("ZIP", "the model zip (or give it with -i)"):args("?")
  p:option("-i", "the model zip"):argname("ZIP")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "install-model", argv, function(r)
    if r.ZIP and r.i then error("give the zip once: as ZIP or with -i", 0) end
    if not (r.ZIP or r.i) then error("missing ZIP", 0) end
    return { zip = r.ZIP or r.i }
  end)
  if not o then return code end
  local files = require("lunet.model_sharing").install(o.zip)
  io.write(("installed %d files from %s into %s\n"):format(#files, o.zip, require("lunet.util.paths").results()))
  return 0
end

return M
