-- lunet.io.torch: a thin convenience over lunet.core.pickle (docs/formats.md, "PyTorch checkpoints and
-- pickles") for PyTorch checkpoint files. The C module is the API; this adds state_dict helpers.
local P = require("lunet.core").pickle

local M = { pickle = P }

-- load(path [, {symbolic_globals = {...}}]) -> the checkpoint's value (pickle types, tensors as P.Tensor)
function M.load(path, opts) return P.torch_load(path, opts) end

-- save(path, value): torch.save's format, atomic; lunet host tensors and P.Tensor values become torch tensors
function M.save(path, value) return P.torch_save(path, value) end

-- The tensors of a state_dict (a P.Dict name -> tensor) in its order: {{name = , tensor = lunet host
-- tensor}, ...}, converted to dtype (default "float32"); entries that are no tensors are skipped.
function M.state_dict_tensors(sd, dtype)
  local out = {}
  for name, t in pairs(sd) do
    if getmetatable(t) == P.Tensor then out[#out + 1] = { name = name, tensor = P.tensor_data(t, dtype or "float32") } end
  end
  return out
end

-- A state_dict (OrderedDict, as torch writes it) from a list {{name = , tensor = }, ...}.
function M.state_dict(list)
  local sd = P.odict()
  for _, e in ipairs(list) do P.set(sd, e.name, e.tensor) end
  return sd
end

return M
