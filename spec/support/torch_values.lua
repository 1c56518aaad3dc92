-- The values Lunet writes for the committed fixtures spec/fixtures/torch/lunet_written.{pt,pkl}:
-- scripts/fixtures/make_torch_fixtures.py has them written (scripts/fixtures/lunet_write_torch.lua) and
-- checks them with torch.load(weights_only=True) and pickle.loads; torch_format_spec and pickle_spec
-- rebuild them and require byte-identical output, so that check holds without Python.
local core = require "lunet.core"
local P = core.pickle
local M = {}

local function f32(vals, shape) return core.from_bytes(string.pack(string.rep("<f", #vals), table.unpack(vals)), shape, "f32") end

-- A checkpoint shaped like nnU-Net's: lunet host tensors (float32, float16, int64), a shared tensor,
-- a pickle.tensor, and the plain values around them.
function M.checkpoint()
  local w1 = f32({ 1, 2, 3, 4, 5, 6 }, { 2, 3 })
  local b1 = f32({ 0.5, -0.25 }, { 2 })
  local h = core.from_bytes(string.pack("<I2<I2<I2", 0x3C00, 0xC000, 0x3800), { 3 }, "f16")
  local idx = core.from_bytes(string.pack("<i8<i8", 7, -(1 << 40)), { 2 }, "i64")
  local bf = P.tensor { dtype = "bfloat16", shape = { 2 }, data = string.pack("<I2<I2", 0x3F80, 0xC020) }
  local mom = f32({ 0.125, 0.25, 0.5, 1, 2, 4 }, { 2, 3 })
  local weights = P.odict()
  P.set(weights, "encoder.stages.0.conv.weight", w1)
  P.set(weights, "encoder.stages.0.conv.bias", b1)
  P.set(weights, "decoder.seg_layers.0.weight", w1) -- shared: one storage in the file
  P.set(weights, "half", h)
  P.set(weights, "bf16", bf)
  P.set(weights, "index", idx)
  local state = P.dict()
  P.set(state, 0, P.dict { momentum_buffer = mom })
  local group = P.dict()
  P.set(group, "lr", 0.01)
  P.set(group, "momentum", 0.99)
  P.set(group, "nesterov", true)
  P.set(group, "weight_decay", 3e-05)
  P.set(group, "params", P.list { 0, 1, 2 })
  local ckpt = P.dict()
  P.set(ckpt, "network_weights", weights)
  P.set(ckpt, "optimizer_state", P.dict { state = state, param_groups = P.list { group } })
  P.set(ckpt, "grad_scaler_state", P.None)
  P.set(ckpt, "logging", P.dict { mean_fg_dice = P.list { 0.5, 0.75 }, epoch_end_timestamps = P.list { 1.5, 2.5 } })
  P.set(ckpt, "_best_ema", 0.8125)
  P.set(ckpt, "current_epoch", 2)
  P.set(ckpt, "init_args", P.dict { fold = 0, configuration = "3d_fullres", device = P.device("cuda", 0) })
  P.set(ckpt, "trainer_name", "nnUNetTrainer")
  P.set(ckpt, "inference_allowed_mirroring_axes", P.tuple { 0, 1, 2 })
  P.set(ckpt, "big", P.list { math.maxinteger, math.mininteger, -1, 255, 256, 65536, -129, 1 << 40 })
  return ckpt
end

-- Plain values for the protocol-4 pickle.
function M.plain()
  local d = P.dict()
  P.set(d, "none", P.None)
  P.set(d, "flags", P.list { true, false })
  P.set(d, "ints", P.list { 0, 1, -1, 255, 256, 65535, 65536, -2147483648, 2147483647, 1 << 40, math.mininteger, math.maxinteger })
  P.set(d, "floats", P.list { 0.5, -1e300, 1.0, 3.0 })
  P.set(d, "text", "héllo wörld ✓")
  P.set(d, "bytes", P.bytes("\0\1\255abc"))
  P.set(d, "tuple", P.tuple { 1, "two", P.tuple {} })
  P.set(d, "set", P.pyset { 3, 1, 2 })
  P.set(d, "frozen", P.frozenset { "a" })
  P.set(d, "od", P.odict { b = 2, a = 1 })
  P.set(d, 7, "int key")
  P.set(d, "device", P.device("cpu"))
  P.set(d, "fn", P.global("nnunetv2.postprocessing.remove_connected_components", "remove_all_but_largest_component_from_segmentation"))
  P.set(d, "array", P.array { dtype = "int64", shape = { 2, 2 }, data = string.pack("<i8<i8<i8<i8", 1, 2, 3, -4) })
  P.set(d, "plain", { z = 1, a = { 1, 2, 3 } })
  local shared = P.list { "shared" }
  P.set(d, "shared1", shared)
  P.set(d, "shared2", shared)
  return d
end

return M
