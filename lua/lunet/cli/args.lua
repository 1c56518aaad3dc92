-- Argument parsing shared by every `lunet` command, on lua-argparse (Debian's lua-argparse): each command declares
-- its options once, and the help, the docs (scripts/gen-cli-doc.lua) and the errors all come from that declaration.
--
-- nnU-Net spells many options with one dash and several letters (-np, -tr, -chk, -num_parts). lua-argparse reads
-- "-np" as the bundle "-n -p", so such names get a hidden alias "---np" and parse() rewrites "-np" to it; help and
-- errors still say "-np". A single-dash word that no option declares is refused here as an unknown option, rather
-- than split into letters.
local argparse = require "argparse"

local M = {}

local WIDTH = 116

--- A parser for `lunet COMMAND` with the help layout every command shares. description: what the command does.
function M.parser(command, description)
  local p = argparse("lunet " .. command)
  p:description(description)
  p:help_max_width(WIDTH)
  p:usage_max_width(WIDTH)
  -- listed in the help like any option; parse() answers -h itself, before any other argument is looked at
  p:add_help({ action = function() end })
  -- "usage:" in lower case, as Python's argparse (nnU-Net's commands) and Lunet's earlier texts print it
  local get_help, get_usage = p.get_help, p.get_usage
  function p.get_help(self) return (get_help(self):gsub("^Usage:", "usage:")) end
  function p.get_usage(self) return (get_usage(self):gsub("^Usage:", "usage:")) end
  return p
end

-- Converters: each returns the value, or nil and the message argparse shows (naming the option as the user wrote it).

--- An integer, at least min when given: "-np needs a positive integer, got abc".
function M.int(name, min)
  local what = min == 1 and "a positive integer" or min and ("an integer >= " .. min) or "an integer"
  return function(s)
    local n = math.tointeger(tonumber(s))
    if not n or (min and n < min) then return nil, ("%s needs %s, got %s"):format(name, what, s) end
    return n
  end
end

--- A number; positive when asked: "--gpu-memory needs a positive number, got lots".
function M.number(name, positive)
  local what = positive and "a positive number" or "a number"
  return function(s)
    local n = tonumber(s)
    if not n or n ~= n or (positive and not (n > 0)) then return nil, ("%s needs %s, got %s"):format(name, what, s) end
    return n
  end
end

--- A fold number (>= 0) or "all".
function M.fold(name)
  return function(s)
    if s == "all" then return s end
    local n = math.tointeger(tonumber(s))
    if not n or n < 0 then return nil, ("%s needs fold numbers (0, 1, ...) or 'all', got %s"):format(name, s) end
    return n
  end
end

-- The parser's option names (argparse keeps them in _options[i]._aliases, with the '-' spelling of each '_' one;
-- the shown ones in _public_aliases), and the single-dash long ones given their "---" alias, once per parser.
local function names(p)
  if p._lunet_names then return p._lunet_names end
  local all, long, public = {}, {}, {}
  for _, o in ipairs(p._options) do
    if not o._hidden then
      for _, a in ipairs(o._public_aliases) do public[a] = true end
    end
    local hidden = {}
    for _, a in ipairs(o._aliases) do
      all[a] = true
      if #a > 2 and a:match("^%-[^-]") then
        long[a] = true
        hidden[#hidden + 1] = "--" .. a
      end
    end
    if #hidden > 0 then o:hidden_name(table.concat(hidden, " ")) end
  end
  p._lunet_names = { all = all, long = long, public = public }
  return p._lunet_names
end

--- Parses argv (a list of strings) with p. Returns argparse's result table, or { help = true } when -h/--help is
--- among the options. Raises error(message, 0) on a usage mistake.
function M.parse(p, argv)
  local n = names(p)
  local out, plain = {}, false
  for _, a in ipairs(argv) do
    local prev = out[#out]
    if plain then out[#out + 1] = a
    elseif a == "--" then plain = true; out[#out + 1] = a
    elseif a == "-h" or a == "--help" then return { help = true }
    elseif tonumber(a) and a:sub(1, 1) == "-" and prev and n.all[prev:match("^%-%-(%-[^-].*)$") or prev] then
      -- a negative number after an option is its value (as Python's argparse takes it), not an option "-1":
      -- glued to it, which argparse reads as the value ("---npp=-1", "-f-1")
      out[#out] = prev .. (prev:sub(1, 2) == "--" and "=" or "") .. a
    else
      local name = a:match("^(%-[^-][^=]*)")
      if name and #name > 2 and not tonumber(a) then
        if n.long[name] then out[#out + 1] = "--" .. a
        elseif n.all[name:sub(1, 2)] and not a:sub(3, 3):match("%a") then
          out[#out + 1] = a -- a short option with its value attached: -f0, -o/tmp/x (not -pretrained: -p retrained)
        else
          -- as argparse's own tip: the declared names that start like it
          local near = {}
          for k in pairs(n.public) do
            if k:sub(1, 3) == name:sub(1, 3) then near[#near + 1] = "'" .. k .. "'" end
          end
          table.sort(near)
          local tip = #near > 0 and ("\nDid you mean one of these: " .. table.concat(near, " ") .. "?") or ""
          error(("unknown option '%s'%s"):format(name, tip), 0)
        end
      else
        out[#out + 1] = a
      end
    end
  end
  local ok, res = p:pparse(out)
  if not ok then error((tostring(res):gsub("'%-%-%-", "'-")), 0) end
  return res
end

--- The usage mistake as every command reports it: the usage lines, then "lunet COMMAND: message". Returns 2.
function M.fail(p, command, msg)
  io.stderr:write(p:get_usage(), "\n", "lunet ", command, ": ", tostring(msg), "\n")
  return 2
end

--- parse() for a command's run(): returns build(result) (the command's options; it may raise error(msg, 0) for
--- checks across options), or nil and the exit status after writing the help (0) or the mistake (2).
function M.parse_or_status(p, command, argv, build)
  local ok, res = pcall(M.parse, p, argv)
  if ok and res.help then io.write(p:get_help(), "\n"); return nil, 0 end
  if ok and build then ok, res = pcall(build, res) end
  if not ok then return nil, M.fail(p, command, res) end
  return res
end

--- Makes a command module's `usage` its parser's help (docs, `lunet --help` and old callers read it).
function M.command(mod)
  return setmetatable(mod, { __index = function(t, k)
    if k == "usage" and t.parser then return t.parser():get_help() end
  end })
end

return M
