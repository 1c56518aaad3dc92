-- Packages whose modules load on first use: `pkg.name` is `require(prefix .. "." .. name)`.
-- Shared by lunet, lunet.util and lunet.io so that `lunet.io.image.read` works without requires.
local lazy = {}

--- Gives t an __index that requires prefix.name on first access (aliases[name], when set, names
--- the module relative to prefix instead) and caches it in t. Returns t.
function lazy.package(t, prefix, aliases)
  aliases = aliases or {}
  return setmetatable(t, {
    __index = function(tbl, name)
      if type(name) ~= "string" or not name:match("^[%w_]+$") then return nil end
      local modname = prefix .. "." .. (aliases[name] or name)
      local ok, mod = pcall(require, modname)
      if not ok then
        -- Only a missing module is "no such field"; an error inside a module must surface.
        if type(mod) == "string" and mod:find("module '" .. modname .. "' not found", 1, true) then
          return nil
        end
        error(mod, 2)
      end
      rawset(tbl, name, mod)
      return mod
    end,
  })
end

return lazy
