-- numpy .npy and .npz files as tensors (the C reader/writer lives in csrc/img/npz.c).
-- npy.read(path) -> host Tensor; npy.write(path, tensor); npy.read_npz(path) -> {name = Tensor};
-- npy.write_npz(path, {name = Tensor}).
local core = require "lunet.core"

local npy = {}

function npy.read(path) return core.npz.read_npy(path) end
function npy.write(path, t) return core.npz.write_npy(path, t) end
function npy.read_npz(path) return core.npz.read(path) end
function npy.write_npz(path, arrays) return core.npz.write(path, arrays) end

return npy
