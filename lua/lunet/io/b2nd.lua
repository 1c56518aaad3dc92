-- Blosc2 NDArray (.b2nd) files, as nnunetv2 2.6+ writes preprocessed cases and the cascade's
-- predicted_next_stage segmentations (the C reader lives in csrc/fmt/b2nd.c; read only).
-- b2nd.read(path) -> host Tensor with the file's shape and dtype.
local core = require "lunet.core"

local b2nd = {}

function b2nd.read(path) return core.b2nd.read(path) end

return b2nd
