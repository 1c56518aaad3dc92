-- lunet nnunet: runs a command under its nnU-Net v2 name with nnU-Net's arguments (the nnUNetv2_* wrappers call it).
local USAGE = [[
usage: lunet nnunet nnUNetv2_NAME [nnU-Net's arguments]
       lunet nnunet --list
       lunet nnunet --write-wrappers DIR

Runs the lunet command that does what nnU-Net v2's command NAME does, taking nnU-Net's arguments unchanged
(e.g. `lunet nnunet nnUNetv2_train 4 3d_fullres 0 -tr nnUNetTrainer_250epochs -device cpu`). Options that only
select nnU-Net's defaults (-fpe DatasetFingerprintExtractor, -preprocessor_name DefaultPreprocessor, -num_gpus 1)
are accepted; other values of them are errors. --not_on_device and --verbose of planning are ignored.
  --list                 the nnUNetv2_* names and the lunet command each runs
  --write-wrappers DIR   writes one executable shell script per name into DIR (scripts/nnunet-names/ in the
                         checkout holds them): with DIR first on PATH, a script written for nnU-Net runs with Lunet
]]

local function run(args)
  local nn = require "lunet.nnunet_names"
  local a = args[1]
  if a == nil or a == "-h" or a == "--help" then
    io.write(USAGE)
    return a == nil and 2 or 0
  elseif a == "--list" then
    for _, n in ipairs(nn.names()) do io.write(string.format("%-44s lunet %s\n", n, nn.COMMANDS[n].command)) end
    return 0
  elseif a == "--write-wrappers" then
    if not args[2] then io.stderr:write("lunet nnunet: --write-wrappers needs a folder\n") return 2 end
    local files = nn.write_wrappers(args[2])
    io.write(string.format("wrote %d wrappers into %s\n", #files, args[2]))
    return 0
  end
  return nn.run(a, table.move(args, 2, #args, 1, {}))
end

return { summary = "run a command under its nnU-Net v2 name (nnUNetv2_*) with nnU-Net's arguments", usage = USAGE,
         run = run }
