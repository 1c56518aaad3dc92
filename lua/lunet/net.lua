-- lunet.net: U-Nets built from an nnU-Net v2 plan (PlainConvUNet / ResidualEncoderUNet), their
-- training step and checkpoints. The C core (lunet.core.net) does the work; this module reads the
-- plan, takes every constant from the rules' trainer table and wraps the network object.
--
--   local net = lunet.net(plans, "3d_fullres", num_input_channels, num_outputs [, opts])
--   net:parameters()            -> { count = n, names = {...}, shapes = {...} }
--   net:forward(x [, {train=, deep_supervision=, on_device=}]) -> list of host tensors (full res first;
--                                 on_device: device tensors instead, for device-side accumulation)
--   net:device()                -> index of the device the network lives on (lunet.devices() order)
--   net:train_step(batch)       -> loss, grad_norm     batch = {data = x, target = seg, lr = ...}
--   net:save(path, meta) / net:load(path [, {momentum = false}]) -> meta  (PyTorch checkpoints,
--                                 lunet.io.checkpoint; momentum = false for prediction: no momentum buffer)
--   net:freeze_weights([false])  inference forwards keep each conv's packed weights until the weights change
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

-- torch defaults that plans do not spell out: LeakyReLU's negative slope and the Kaiming `a`
-- nnU-Net passes to InitWeights_He (dynamic_network_architectures/initialization/weight_init.py).
M.torch_leaky_slope = 1e-2
M.kaiming_neg_slope = 1e-2

local function read_plans(plans)
  if type(plans) == "string" then
    local f, err = io.open(plans, "rb")
    if not f then error("lunet.net: cannot open plans " .. tostring(err), 3) end
    local s = f:read("a")
    f:close()
    local ok, t = pcall(json.decode, s, plans)
    if not ok then error("lunet.net: " .. plans .. ": " .. tostring(t), 3) end
    return t
  end
  return plans
end

-- The configuration with inherits_from resolved (as nnU-Net's PlansManager).
function M.configuration(plans, cfg)
  local confs = plans.configurations or {}
  local c = confs[cfg]
  if not c then error(("lunet.net: plans have no configuration '%s'"):format(tostring(cfg)), 3) end
  if c.inherits_from then
    local base = M.configuration(plans, c.inherits_from)
    local merged = {}
    for k, v in pairs(base) do merged[k] = v end
    for k, v in pairs(c) do merged[k] = v end
    merged.inherits_from = nil
    return merged
  end
  return c
end

-- Plans written before nnU-Net v2.4 describe the network by UNet_class_name, UNet_base_num_features,
-- n_conv_per_stage_encoder/decoder, pool_op_kernel_sizes, conv_kernel_sizes and unet_max_num_features;
-- nnunetv2's ConfigurationManager rebuilds `architecture` from them on load, and so does this.
function M.architecture_of(c)
  if c.architecture then return c.architecture end
  local cls = c.UNet_class_name
  if not cls then return nil end
  local full = ({ PlainConvUNet = "dynamic_network_architectures.architectures.unet.PlainConvUNet",
    ResidualEncoderUNet = "dynamic_network_architectures.architectures.residual_unet.ResidualEncoderUNet" })[cls]
  if not full then
    error(("lunet.net: old plans name UNet_class_name %s; only PlainConvUNet and ResidualEncoderUNet convert"):format(
      tostring(cls)), 3)
  end
  local n = #c.n_conv_per_stage_encoder
  local feats = {}
  for i = 1, n do feats[i] = math.min(c.UNet_base_num_features * 2 ^ (i - 1), c.unet_max_num_features) // 1 end
  local kw = {
    n_stages = n, features_per_stage = feats, kernel_sizes = c.conv_kernel_sizes, strides = c.pool_op_kernel_sizes,
    n_conv_per_stage_decoder = c.n_conv_per_stage_decoder, conv_bias = true,
    norm_op_kwargs = { eps = 1e-5, affine = true }, nonlin_kwargs = { inplace = true },
  }
  kw[cls == "PlainConvUNet" and "n_conv_per_stage" or "n_blocks_per_stage"] = c.n_conv_per_stage_encoder
  return { network_class_name = full, arch_kwargs = kw }
end

-- The C configuration table for a plan configuration.
function M.arch_cfg(plans, cfg, nin, nout, opts)
  opts = opts or {}
  local c = M.configuration(plans, cfg)
  local arch = M.architecture_of(c)
  if not arch then error(("lunet.net: configuration '%s' has no architecture"):format(cfg), 3) end
  local kw = arch.arch_kwargs
  local cls = arch.network_class_name or ""
  local kind
  if cls:match("PlainConvUNet$") then kind = "plain"
  elseif cls:match("ResidualEncoderUNet$") then kind = "resenc"
  else error(("lunet.net: network class %s is not supported (PlainConvUNet, ResidualEncoderUNet)"):format(cls), 3) end
  local nsp = #kw.kernel_sizes[1]
  local nl = kw.nonlin_kwargs or {}
  local nk = kw.norm_op_kwargs or {}
  return {
    kind = kind, nsp = nsp, in_channels = nin, num_classes = nout, n_stages = kw.n_stages,
    features = kw.features_per_stage, kernels = kw.kernel_sizes, strides = kw.strides,
    n_enc = kind == "plain" and kw.n_conv_per_stage or kw.n_blocks_per_stage,
    n_dec = kw.n_conv_per_stage_decoder, conv_bias = kw.conv_bias and true or false,
    norm_eps = nk.eps or 1e-5, leaky_slope = nl.negative_slope or M.torch_leaky_slope,
    init_neg_slope = M.kaiming_neg_slope, deep_supervision = true,
    device = opts.device == nil and true or opts.device,
  }, c
end

-- Deep-supervision weights (nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: _build_loss): 1/2^i,
-- the last replaced by trainer's last weight, normalised to sum 1.
function M.ds_weights(n, trainer)
  if n <= 1 then return { 1 } end
  local w, s = {}, 0
  for i = 1, n do w[i] = 1 / 2 ^ (i - 1) end
  w[n] = trainer.deep_supervision_last_weight or 0
  for i = 1, n do s = s + w[i] end
  for i = 1, n do w[i] = w[i] / s end
  return w
end

-- Poly learning rate (nnunetv2/training/lr_scheduler/polylr.py: PolyLRScheduler) for epoch e.
function M.poly_lr(trainer, epoch)
  return trainer.initial_lr * (1 - epoch / trainer.num_epochs) ^ trainer.poly_exponent
end

local Net = {}
Net.__index = Net

function Net:parameters()
  local ps = self.core:params()
  local names, shapes = {}, {}
  for i, p in ipairs(ps) do names[i], shapes[i] = p.name, p.shape end
  return { count = self.core:num_weights(), tensors = #ps, names = names, shapes = shapes }
end

function Net:forward(x, opts)
  opts = opts or {}
  local ds = opts.deep_supervision
  if ds == nil then ds = false end
  return self.core:forward(x, opts.train and true or false, ds, opts.on_device and true or false)
end

function Net:device() return self.core:device() end

-- Training options from the rules' trainer table (no constants in C).
function Net:train_opts(batch)
  local tr = self.trainer
  local lossr = tr.loss or {}
  local nout = self.cfg.n_stages - 1
  local ds = tr.enable_deep_supervision ~= false
  return {
    lr = batch.lr or self.lr or tr.initial_lr, momentum = tr.momentum, weight_decay = tr.weight_decay,
    grad_clip = tr.grad_clip_norm, ds_weights = ds and M.ds_weights(nout, tr) or nil,
    batch_dice = batch.batch_dice == nil and (self.conf.batch_dice and true or false) or batch.batch_dice,
    regions = batch.regions or false, do_bg = lossr.do_bg and true or (batch.regions and true or false),
    smooth = lossr.dice_smooth, weight_ce = lossr.weight_ce, weight_dice = lossr.weight_dice,
    has_ignore = batch.ignore_label ~= nil, ignore_label = batch.ignore_label or 0,
  }
end

function Net:train_step(batch)
  return self.core:train_step(batch.data, batch.target, self:train_opts(batch))
end

function Net:loss(batch)
  return self.core:loss(batch.data, batch.target, self:train_opts(batch))
end

--- Inference forwards keep each convolution's packed weights until the weights are next written (load, set,
--- a training step): what a prediction over many windows repacks otherwise. net:freeze_weights(false) drops them.
function Net:freeze_weights(on) self.core:freeze_weights(on ~= false) end
function Net:weights_frozen() return self.core:weights_frozen() end
function Net:get(name) return self.core:get(name) end
function Net:set(name, t) return self.core:set(name, t) end
function Net:init(seed) self.core:init(seed) end

-- Checkpoints are PyTorch checkpoints with nnU-Net's keys (lunet.io.checkpoint), readable by nnunetv2;
-- meta is the trainer's resume state. Lunet's older LUNETCKP files (format version 1) still load.
function Net:save(path, meta)
  require("lunet.io.checkpoint").save(self, path, meta)
end

function Net:load(path, opts)
  local ck = require "lunet.io.checkpoint"
  if ck.is_torch(path) then return ck.load(self, path, opts) end
  local ok, err = pcall(self.core.load, self.core, path, not (opts and opts.momentum == false))
  if not ok then error(err, 2) end
  local h = json.decode((core.net.read_header(path)), path)
  return h.meta, h
end

--- nnU-Net's fine-tuning start (-pretrained_weights): every weight but the segmentation heads.
function Net:load_pretrained(path)
  local ck = require "lunet.io.checkpoint"
  if not ck.is_torch(path) then error(path .. ": -pretrained_weights needs a PyTorch checkpoint (.pth)", 2) end
  ck.load_pretrained(self, path)
end

--- The header of a checkpoint of either format: {configuration, plans, dataset_json, meta, trainer_name,
--- mirror_axes}, and the architecture string for LUNETCKP files.
function M.read_header(path)
  local ck = require "lunet.io.checkpoint"
  if ck.is_torch(path) then
    local h = ck.read(path)
    h.tree = nil
    h.format = "torch"
    return h
  end
  local header, arch = core.net.read_header(path)
  return json.decode(header, path), arch
end

-- lunet.net(plans, cfg, nin, nout [, {rules=, seed=, device=, dataset_json=, precision=}])
function M.new(plans, cfg, nin, nout, opts)
  opts = opts or {}
  plans = read_plans(plans)
  local acfg, conf = M.arch_cfg(plans, cfg, nin, nout, opts)
  local rules = opts.rules or require "lunet.rules.default"
  if type(rules) == "string" then rules = require(rules) end
  local c = core.net.new(acfg)
  local self = setmetatable({ core = c, cfg = acfg, conf = conf, cfg_name = cfg, plans = plans,
                              trainer = rules.trainer, dataset_json = opts.dataset_json }, Net)
  if acfg.device then
    -- opts.init == false: the caller loads every weight next (prediction); He init of a 2-D 512-feature net
    -- draws ~46M normals, seconds on a CPU, all overwritten
    if opts.init ~= false then c:init(opts.seed or 12345) end
    self.precision = M.precision(opts.precision or (rules.trainer or {}).precision, c:device())
    if self.precision == "mixed" then
      c:set_scaler(M.scaler_cfg(rules.trainer))
      -- autocast's storage: float16 activations in training steps (the implicit-GEMM convolutions)
      c:set_half_activations(true)
    end
  end
  return self
end

-- The trainer's precision on device index dev: "mixed" (nnU-Net's AMP: the loss scaler of torch.amp.GradScaler
-- and float16 activations in training steps) or "fp32"; "auto" (or nil) is mixed on a GPU and fp32 elsewhere, as nnU-Net enables autocast and GradScaler
-- on CUDA only.
function M.precision(p, dev)
  p = p or "auto"
  if p == "auto" then
    local d = core.devices()[(dev or 0) + 1]
    return (d and d.type == "gpu") and "mixed" or "fp32"
  end
  if p ~= "mixed" and p ~= "fp32" then
    error(("trainer precision %q: expected \"mixed\", \"fp32\" or \"auto\""):format(tostring(p)), 2)
  end
  return p
end

-- GradScaler's settings from the trainer table (grad_scaler = {init_scale, growth_factor, backoff_factor,
-- growth_interval}), in net:set_scaler's form.
function M.scaler_cfg(tr)
  local g = (tr or {}).grad_scaler or {}
  return { enabled = true, scale = g.init_scale or 2 ^ 16, growth_factor = g.growth_factor or 2,
           backoff_factor = g.backoff_factor or 0.5, growth_interval = g.growth_interval or 2000, growth_tracker = 0 }
end

-- GradScaler.state_dict() of a mixed-precision network (nil for fp32), as nnU-Net's checkpoints hold it.
function Net:scaler_state()
  if self.precision ~= "mixed" then return nil end
  local s = self.core:scaler()
  return { scale = s.scale, growth_factor = s.growth_factor, backoff_factor = s.backoff_factor,
           growth_interval = math.tointeger(s.growth_interval), _growth_tracker = math.tointeger(s.growth_tracker) }
end

-- GradScaler.load_state_dict: a checkpoint's scale and growth tracker (ignored by an fp32 network, as
-- nnU-Net ignores grad_scaler_state without a scaler).
function Net:set_scaler_state(st)
  if self.precision ~= "mixed" or type(st) ~= "table" then return end
  self.core:set_scaler { enabled = true, scale = st.scale, growth_factor = st.growth_factor,
                         backoff_factor = st.backoff_factor, growth_interval = st.growth_interval,
                         growth_tracker = st._growth_tracker }
end

return setmetatable(M, { __call = function(_, ...) return M.new(...) end })
