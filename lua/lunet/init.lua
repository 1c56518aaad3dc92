-- Lunet: nnU-Net v2's self-configuring segmentation pipeline, C core under a Lua front.
-- Stage modules load lazily: `lunet.dataset`, `lunet.planner`, ... are `require("lunet.<name>")`.
-- A stage module whose table has __call can be used as a function (`lunet.fingerprint(ds)`).
local core = require "lunet.core"

local lunet = {
  version = "0.1.0",
  core = core,
}

function lunet.devices() return core.devices() end
function lunet.tensor(data, opts) return core.tensor(data, opts) end
lunet.Tensor = core.Tensor

return setmetatable(lunet, {
  __index = function(t, name)
    if type(name) ~= "string" or not name:match("^[%w_]+$") then return nil end
    local ok, mod = pcall(require, "lunet." .. name)
    if not ok then
      -- Only a missing module is "no such field"; an error inside a module must surface.
      if type(mod) == "string" and mod:find("module 'lunet%." .. name .. "' not found", 1, false) then
        return nil
      end
      error(mod, 2)
    end
    rawset(t, name, mod)
    return mod
  end,
})
