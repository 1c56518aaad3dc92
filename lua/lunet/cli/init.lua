-- The `lunet` command: `lunet COMMAND ...` runs lua/lunet/cli/COMMAND.lua (dashes become
-- underscores). Each command module returns { summary = "...", parser = function() ... end, run = function(args) }:
-- parser() declares the options with lua-argparse (lunet.cli.args), for run, `lunet COMMAND -h` and docs/cli.md.
local M = {}

local function command_module(name)
  local modname = "lunet.cli." .. name:gsub("-", "_")
  local ok, mod = pcall(require, modname)
  if ok then return mod end
  if type(mod) == "string" and mod:find("module '" .. modname .. "' not found", 1, true) then return nil end
  error(mod, 0)
end

local function list_commands()
  local names = {}
  for dir in package.path:gmatch("[^;]+") do
    local base = dir:match("^(.*)%?%.lua$")
    if base then
      local p = io.popen('ls "' .. base .. 'lunet/cli" 2>/dev/null')
      if p then
        for f in p:lines() do
          local n = f:match("^(.-)%.lua$")
          if n and n ~= "init" and n ~= "args" then names[n:gsub("_", "-")] = true end
        end
        p:close()
      end
    end
  end
  local out = {}
  for n in pairs(names) do out[#out + 1] = n end
  table.sort(out)
  return out
end

M.command_module = command_module
M.commands = list_commands

function M.main(argv)
  local cmd = argv[1]
  if not cmd or cmd == "-h" or cmd == "--help" or cmd == "help" then
    io.write("usage: lunet COMMAND [options]   (lunet COMMAND -h for a command's options)\n\ncommands:\n")
    for _, n in ipairs(list_commands()) do
      local mod = command_module(n)
      io.write(string.format("  %-22s %s\n", n, mod and mod.summary or ""))
    end
    return 0
  end
  local mod = command_module(cmd)
  if not mod then
    io.stderr:write("lunet: unknown command '" .. cmd .. "' (lunet --help lists them)\n")
    return 2
  end
  local args = table.move(argv, 2, #argv, 1, {})
  local ok, res = xpcall(mod.run, function(e)
    if os.getenv("LUNET_TRACEBACK") then return debug.traceback(e, 2) end
    return e
  end, args)
  if not ok then
    io.stderr:write("lunet " .. cmd .. ": " .. tostring(res) .. "\n")
    return 1
  end
  return res or 0
end

return M
