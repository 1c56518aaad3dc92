-- lunet nnunet: runs a command under its nnU-Net v2 name with nnU-Net's arguments (the nnUNetv2_* wrappers call it).
local args = require "lunet.cli.args"

local M = args.command({ summary = "run a command under its nnU-Net v2 name (nnUNetv2_*) with nnU-Net's arguments" })

function M.parser()
  local p = args.parser("nnunet", [[
Runs the lunet command that does what nnU-Net v2's command NAME does, taking nnU-Net's arguments unchanged
(e.g. `lunet nnunet nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainer_250epochs -device cpu`); that command's own
parser checks them. Options that only select nnU-Net's defaults (-fpe DatasetFingerprintExtractor,
-preprocessor_name DefaultPreprocessor, -num_gpus 1) are accepted; other values of them are errors.
--not_on_device and --verbose of planning are ignored.]])
  p:argument("NAME", "nnU-Net v2's command name, nnUNetv2_..."):args("?")
  p:argument("ARGS", "nnU-Net's arguments for it"):args("*")
  p:flag("--list", "the nnUNetv2_* names and the lunet command each runs")
  p:option("--write-wrappers", "writes one executable shell script per name into DIR (scripts/nnunet-names/ in the "
    .. "checkout holds them): with DIR first on PATH, a script written for nnU-Net runs with Lunet"):argname("DIR")
  return p
end

function M.run(argv)
  local nn = require "lunet.nnunet_names"
  -- nnU-Net's arguments go to the named command untouched: its own parser checks them, not this one
  if argv[1] and argv[1]:sub(1, 1) ~= "-" then return nn.run(argv[1], table.move(argv, 2, #argv, 1, {})) end
  local r, code = args.parse_or_status(M.parser(), "nnunet", argv, function(r)
    if not (r.list or r.write_wrappers) then error("missing NAME (lunet nnunet --list names them)", 0) end
    return r
  end)
  if not r then return code end
  if r.list then
    for _, n in ipairs(nn.names()) do io.write(string.format("%-44s lunet %s\n", n, nn.COMMANDS[n].command)) end
    return 0
  end
  local files = nn.write_wrappers(r.write_wrappers)
  io.write(string.format("wrote %d wrappers into %s\n", #files, r.write_wrappers))
  return 0
end

return M
