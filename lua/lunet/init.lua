-- Lunet: nnU-Net v2's self-configuring segmentation pipeline, C core under a Lua front.
-- Stage modules load lazily: `lunet.dataset`, `lunet.planner`, ... are `require("lunet.<name>")`;
-- helpers are under `lunet.util` (json, paths, term, clock, plot, fs) and file formats under `lunet.io`
-- (image, store, npy). A stage module whose table has __call can be used as a function (`lunet.fingerprint(ds)`).
local core = require "lunet.core"
local lazy = require "lunet.util.lazy"

local lunet = {
  version = "0.1.0",
  core = core,
}

function lunet.devices() return core.devices() end
function lunet.tensor(data, opts) return core.tensor(data, opts) end
lunet.Tensor = core.Tensor

-- The helpers and formats were top-level modules before they were grouped; their short names
-- (`lunet.json`, `lunet.image`, ...) stay as aliases so scripts written against them keep working.
local moved = {
  json = "util.json", paths = "util.paths", term = "util.term", clock = "util.clock", plot = "util.plot",
  image = "io.image", store = "io.store", npy = "io.npy",
}

return lazy.package(lunet, "lunet", moved)
