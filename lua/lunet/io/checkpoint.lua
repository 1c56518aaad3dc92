-- lunet.io.checkpoint: network checkpoints in PyTorch's format with nnU-Net's keys, so that a results folder
-- is shared with nnunetv2 both ways (docs/formats.md, "Checkpoints").
--
--   checkpoint.is_torch(path)                 -> true for a torch.save zip, false for Lunet's older LUNETCKP files
--   checkpoint.save(net, path, meta)          writes what nnUNetTrainer.save_checkpoint writes, plus Lunet's own
--                                             resume state under the key `lunet` (nnU-Net ignores it)
--   checkpoint.load(net, path [, opts])       -> meta, header: weights (and SGD momentum when present, unless
--                                             opts.momentum == false: prediction never makes the buffer) into net
--   checkpoint.read(path)                     -> header {plans, dataset_json, configuration, trainer_name, fold,
--                                                mirror_axes, meta} without touching a network
--   checkpoint.load_pretrained(net, path)     nnU-Net's fine-tuning: every weight but the segmentation heads
--   checkpoint.state_dict_keys(names)         torch's state_dict keys for Lunet's parameter names, in order
--
-- The network's parameters are torch's named_parameters() (same names, same order); torch's state_dict adds
-- aliases that share the same storage: each ConvDropoutNormReLU's conv/norm again as all_modules.0/1, and the
-- whole encoder again under decoder.encoder. nnU-Net loads with strict=True, so every alias is written.
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

local function pk() return core.pickle end

-- ------------------------------------------------------------------------------------------------ keys

--- torch's state_dict keys for the network's parameter names (named_parameters order). Returns a list of
--- {key=, param=i}: every parameter once under its own name, the ConvDropoutNormReLU aliases after each
--- block, and the decoder.encoder copy of every encoder key after the encoder (module registration order).
function M.state_dict_keys(names)
  local out, enc = {}, {}
  local i, n = 1, #names
  local function emit(key, p, is_enc)
    out[#out + 1] = { key = key, param = p }
    if is_enc then enc[#enc + 1] = { key = "decoder." .. key, param = p } end
  end
  local copied = false
  while i <= n do
    local name = names[i]
    local is_enc = name:sub(1, 8) == "encoder."
    if not is_enc and not copied then
      for _, e in ipairs(enc) do out[#out + 1] = e end
      copied = true
    end
    local block = name:match("^(.*)%.conv%.[^.]+$") or name:match("^(.*)%.norm%.[^.]+$")
    if block then
      -- the block's own parameters, then its all_modules aliases (conv -> 0, norm -> 1)
      local j, aliases = i, {}
      while j <= n do
        local nm = names[j]
        local part, leaf = nm:sub(#block + 2):match("^(%a+)%.([^.]+)$")
        if nm:sub(1, #block + 1) ~= block .. "." or (part ~= "conv" and part ~= "norm") then break end
        emit(nm, j, is_enc)
        aliases[#aliases + 1] = { block .. ".all_modules." .. (part == "conv" and "0" or "1") .. "." .. leaf, j }
        j = j + 1
      end
      for _, a in ipairs(aliases) do emit(a[1], a[2], is_enc) end
      i = j
    else
      emit(name, i, is_enc)
      i = i + 1
    end
  end
  if not copied then for _, e in ipairs(enc) do out[#out + 1] = e end end
  return out
end

-- ------------------------------------------------------------------------------------------------ format

function M.is_torch(path)
  local f = io.open(path, "rb")
  if not f then return false end
  local magic = f:read(4)
  f:close()
  return magic == "PK\3\4"
end

-- JSON-shaped Lua values (lunet.util.json's decoded arrays/objects, plain tables) -> pickle values.

local function to_py(v)
  local P = pk()
  if v == json.null or v == nil then return P.None end
  if type(v) ~= "table" then return v end
  local mt = getmetatable(v)
  if mt and not mt.__jsontype then return v end -- already a pickle value (tensor, device, list, ...)
  if json.is_array(v) then
    local l = {}
    for k = 1, #v do l[k] = to_py(v[k]) end
    return P.list(l)
  end
  local d = P.dict()
  for _, k in ipairs(json.keys(v)) do P.set(d, k, to_py(v[k])) end
  return d
end

-- Pickle values -> JSON-shaped Lua values (None -> json.null, lists/tuples -> arrays, dicts -> objects).
local from_py = require("lunet.io.pickles").plain

--- Writes the checkpoint nnUNetTrainer.save_checkpoint writes. meta: the trainer's resume state (see
--- lunet.trainer), any table; its nnU-Net fields (current_epoch, logging, best_ema, trainer_name, fold,
--- inference_allowed_mirroring_axes, lr, trainer) fill nnU-Net's keys.
function M.save(net, path, meta)
  local P = pk()
  meta = meta or {}
  local ps = net.core:params()
  local names = {}
  for i, p in ipairs(ps) do names[i] = p.name end
  -- one host tensor per parameter: its aliases in the state_dict share its storage, as in torch
  local tensors = {}
  for i = 1, #ps do tensors[i] = net.core:get(i) end
  local weights = P.dict()
  for _, e in ipairs(M.state_dict_keys(names)) do P.set(weights, e.key, tensors[e.param]) end

  local mom = net.core:flat(2)
  local state = P.dict()
  for i, p in ipairs(ps) do
    local m = P.dict()
    P.set(m, "momentum_buffer",
      P.tensor { dtype = "float32", shape = p.shape, data = mom:sub(p.offset * 4 + 1, (p.offset + p.numel) * 4) })
    P.set(state, i - 1, m)
  end
  local tr = meta.trainer or net.trainer or {}
  local epoch = math.tointeger(meta.current_epoch or 0) or 0
  local group = P.dict()
  local lr = meta.lr
  if lr == nil and tr.initial_lr and tr.num_epochs then
    lr = tr.initial_lr * (1 - math.max(epoch - 1, 0) / tr.num_epochs) ^ (tr.poly_exponent or 0.9)
  end
  for _, kv in ipairs {
    { "lr", lr or 0.01 }, { "momentum", tr.momentum or 0.99 }, { "dampening", 0 },
    { "weight_decay", tr.weight_decay or 3e-5 }, { "nesterov", true }, { "maximize", false }, { "foreach", P.None },
    { "differentiable", false }, { "fused", P.None }, { "initial_lr", tr.initial_lr or 0.01 },
  } do P.set(group, kv[1], kv[2]) end
  local pidx = {}
  for i = 1, #ps do pidx[i] = i - 1 end
  P.set(group, "params", P.list(pidx))
  local opt = P.dict()
  P.set(opt, "state", state)
  P.set(opt, "param_groups", P.list { group })

  local logging = P.dict()
  local L = meta.logging or {}
  for _, k in ipairs { "mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
                       "epoch_start_timestamps", "epoch_end_timestamps" } do
    P.set(logging, k, to_py(L[k] or {}))
  end
  local init = P.dict()
  P.set(init, "plans", to_py(net.plans))
  P.set(init, "configuration", net.cfg_name)
  P.set(init, "fold", meta.fold == "all" and "all" or (math.tointeger(meta.fold) or 0))
  P.set(init, "dataset_json", to_py(net.dataset_json or meta.dataset_json or {}))
  P.set(init, "device", P.device("cpu"))
  local axes = {}
  for k, a in ipairs(meta.inference_allowed_mirroring_axes or {}) do axes[k] = math.tointeger(a) or a end

  local ck = P.dict()
  P.set(ck, "network_weights", weights)
  P.set(ck, "optimizer_state", opt)
  -- GradScaler.state_dict() of a mixed-precision run (nnUNetTrainer.save_checkpoint), None for fp32 as nnU-Net
  -- without a scaler; keys in torch's order
  local gss = (type(net.scaler_state) == "function" and net:scaler_state()) or meta.grad_scaler_state
  local gs = P.None
  if gss then
    gs = P.dict()
    for _, k in ipairs { "scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker" } do
      local v = gss[k]
      if k == "growth_interval" or k == "_growth_tracker" then v = math.tointeger(v) or v else v = v + 0.0 end
      P.set(gs, k, v)
    end
  end
  P.set(ck, "grad_scaler_state", gs)
  P.set(ck, "logging", logging)
  P.set(ck, "_best_ema", meta.best_ema == nil and P.None or meta.best_ema)
  P.set(ck, "current_epoch", epoch)
  P.set(ck, "init_args", init)
  P.set(ck, "trainer_name", meta.trainer_name or "nnUNetTrainer")
  -- no mirroring is None, as nnU-Net's NoMirroring trainers write it (its predictor fails on an empty tuple)
  P.set(ck, "inference_allowed_mirroring_axes", #axes > 0 and P.tuple(axes) or P.None)
  -- Lunet's exact resume state (loader counters, the epoch's partial losses, RNG seed, the trainer table):
  -- one JSON string, under a key nnU-Net's load_checkpoint never reads.
  P.set(ck, "lunet", json.encode { format = "lunet-checkpoint", version = 2, configuration = net.cfg_name, meta = meta })
  P.torch_save(path, ck)
end

local function load_tree(path)
  local ok, tree = pcall(pk().torch_load, path)
  if not ok then error(tostring(tree), 0) end
  if getmetatable(tree) ~= pk().Dict then error(path .. ": not an nnU-Net checkpoint (the pickle is not a dict)", 0) end
  return tree
end

local function weights_of(tree, path)
  local P = pk()
  local w = tree.network_weights
  if w == nil then
    -- a bare state_dict saved with torch.save(net.state_dict())
    if getmetatable(tree) == P.Dict then w = tree end
  end
  if getmetatable(w) ~= P.Dict then error(path .. ": no network_weights in the checkpoint", 0) end
  return w
end

local function tensor_named(w, name)
  local t = w[name]
  if t == nil then t = w["module." .. name] end
  if t == nil then t = w["_orig_mod." .. name] end
  return t
end

local function shape_str(s)
  local o = {}
  for i, v in ipairs(s) do o[i] = tostring(v) end
  return "(" .. table.concat(o, ", ") .. ")"
end

local function same_shape(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do if a[i] ~= b[i] then return false end end
  return true
end

--- Copies the weights of tree into net. skip(name) -> true leaves that parameter as it is.
local function put_weights(net, w, path, skip)
  local P = pk()
  local missing, data = {}, {}
  for i, p in ipairs(net.core:params()) do
    if not (skip and skip(p.name)) then
      local t = tensor_named(w, p.name)
      if t == nil then
        missing[#missing + 1] = p.name
      else
        if not same_shape(t.shape, p.shape) then
          error(("%s: checkpoint is for a different network: %s has shape %s in the file, the network built " ..
            "from the plans needs %s"):format(
            path, p.name, shape_str(t.shape), shape_str(p.shape)), 0)
        end
        data[i] = P.tensor_data(t, "float32")
      end
    end
  end
  if #missing > 0 then
    error(("%s: checkpoint is for a different network: it lacks %d of this network's %d weights (first: %s)"):format(
      path, #missing, #net.core:params(), missing[1]), 0)
  end
  -- every tensor was read (and checksummed) before the first one is set: a bad file changes nothing
  for i, d in pairs(data) do net.core:set(i, d) end
end

local function put_momentum(net, tree)
  local P = pk()
  local opt = tree.optimizer_state
  local st = opt and getmetatable(opt) == P.Dict and opt.state
  if getmetatable(st) ~= P.Dict then return false end
  local ps = net.core:params()
  local parts, pos = {}, 0
  for i, p in ipairs(ps) do
    -- a parameter that never had a gradient has no buffer in torch's state; SGD (dampening 0) starts its
    -- buffer from the first gradient, which is what a zero buffer gives
    local e = st[i - 1]
    local b = e and getmetatable(e) == P.Dict and e.momentum_buffer
    if b and b ~= P.None and not same_shape(b.shape, p.shape) then return false end
    if p.offset > pos then parts[#parts + 1] = string.rep("\0", (p.offset - pos) * 4) end
    if b and b ~= P.None then parts[#parts + 1] = P.tensor_data(b, "float32"):bytes()
    else parts[#parts + 1] = string.rep("\0", p.numel * 4) end
    pos = p.offset + p.numel
  end
  local total = net.core:flat_floats()
  if total > pos then parts[#parts + 1] = string.rep("\0", (total - pos) * 4) end
  net.core:set_flat(2, table.concat(parts))
  return true
end

--- The header of a checkpoint: plans, dataset_json, configuration, trainer_name, fold, mirror_axes (0-based
--- list or nil), meta (Lunet's resume state when Lunet wrote it, else one made from nnU-Net's keys).
function M.read(path)
  local tree = load_tree(path)
  local h = { trainer_name = tree.trainer_name, tree = tree }
  local init = tree.init_args
  if getmetatable(init) == pk().Dict then
    h.plans = init.plans ~= nil and from_py(init.plans) or nil
    h.dataset_json = init.dataset_json ~= nil and from_py(init.dataset_json) or nil
    h.configuration = init.configuration
    h.fold = init.fold
  end
  -- None: the trainer allowed no mirroring at inference (nnUNetPredictor then mirrors nothing)
  local axes = tree.inference_allowed_mirroring_axes
  if axes ~= nil then
    h.mirror_axes = {}
    if axes ~= pk().None then
      for k = 1, axes.n or #axes do h.mirror_axes[k] = math.tointeger(axes[k]) or axes[k] end
    end
  end
  if type(tree.lunet) == "string" then
    local lh = json.decode(tree.lunet, path .. " (lunet state)")
    h.meta = lh.meta
  else
    local L = {}
    local lg = tree.logging
    if getmetatable(lg) == pk().Dict then
      for _, k in ipairs(pk().keys(lg)) do L[k] = from_py(lg[k]) end
    end
    local best = tree._best_ema
    h.meta = {
      current_epoch = math.tointeger(tree.current_epoch) or 0, iteration = 0, logging = L,
      best_ema = (best ~= pk().None) and best or nil, trainer_name = tree.trainer_name, fold = h.fold,
      configuration = h.configuration, inference_allowed_mirroring_axes = h.mirror_axes,
    }
  end
  return h
end

--- Loads weights (and momentum, when the file has it and opts.momentum is not false) into net; returns meta,
--- header.
function M.load(net, path, opts)
  local h = M.read(path)
  local tree = h.tree
  put_weights(net, weights_of(tree, path), path)
  if not (opts and opts.momentum == false) then put_momentum(net, tree) end
  -- nnUNetTrainer.load_checkpoint: the scaler's state when both the file and this run have one
  local gs = tree.grad_scaler_state
  if getmetatable(gs) == pk().Dict and type(net.set_scaler_state) == "function" then
    net:set_scaler_state(from_py(gs))
  end
  h.tree = nil
  return h.meta, h
end

--- nnU-Net's load_pretrained_weights: every weight except the segmentation heads (.seg_layers.) must be in
--- the file with the same shape; the heads keep their initialisation.
function M.load_pretrained(net, path)
  local tree = load_tree(path)
  put_weights(net, weights_of(tree, path), path, function(name) return name:find(".seg_layers.", 1, true) ~= nil end)
end

return M
