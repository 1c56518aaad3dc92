-- Writes docs/cli.md from the commands' argparse declarations (each command module's parser(): every option with
-- its help, as `lunet COMMAND -h` prints it), so the reference cannot drift from the code (spec/docs_spec.lua
-- checks that it is current). Run: lua5.4 scripts/gen-cli-doc.lua
local here = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = here .. "/../lua/?.lua;" .. here .. "/../lua/?/init.lua;" .. package.path
package.cpath = here .. "/../build/?.so;" .. package.cpath
local cli = require "lunet.cli"
local names = cli.commands()
local out = {"# `lunet` command reference\n",
  "Generated from each command's option declarations (the `lunet COMMAND -h` text) by `scripts/gen-cli-doc.lua`;",
  "do not edit by hand. Options spelt with one dash and several letters (`-np`, `-tr`, `-chk`) are nnU-Net's;",
  "as with Python's argparse, a negative number after an option is that option's value.\n",
  "Every command reads `nnUNet_raw`, `nnUNet_preprocessed` and `nnUNet_results` from the environment,",
  "as nnU-Net does, and `LUNET_DEVICE` (`cpu`, `gpu` or an index) for the OpenCL device.\n"}
for _, n in ipairs(names) do
  local mod = cli.command_module(n)
  local help = mod.parser and mod.parser():get_help() or mod.usage or ""
  out[#out + 1] = string.format("## lunet %s\n\n%s\n\n```\n%s\n```\n", n, mod.summary or "", (help:gsub("%s+$", "")))
end
local text = table.concat(out, "\n")
if arg[1] == "--print" then io.write(text) return end
local path = (arg[0]:match("^(.*)/scripts/") or ".") .. "/docs/cli.md"
require("lunet.util.fs").write_atomic(path, text)
print("wrote " .. path)
