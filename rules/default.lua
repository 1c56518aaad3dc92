--[[ rules/default.lua: nnU-Net v2's default ExperimentPlanner (nnunetv2 2.8.1) as editable Lua rules.

Rule files are Lua code that Lunet runs with the rights of the user who runs it: no sandbox. This file and the other
shipped rules do no I/O; a rule file from someone else could do anything you can (read or delete files, run
commands), so read it before you plan or train with it. Each rule call from a user's rule file has a time limit
(LUNET_RULE_TIMEOUT seconds, default 10; docs/planning.md).

Pure Lua, no I/O. A rule is either a constant or a function whose first argument is the planning context `ctx`:
  ctx.rules        the effective rule set (call other rules through it so that overrides take effect)
  ctx.fingerprint  dataset_fingerprint.json as a table (spacings, shapes_after_crop, ...)
  ctx.dataset_json dataset.json as a table
  ctx.num_training, ctx.num_input_channels, ctx.num_classes (number of entries of dataset.json "labels")
  ctx.gpu_memory_gb the VRAM target (rules.gpu_memory_gb unless the caller overrides it)
  ctx.plans_name   the plans identifier
All index lists are 1-based Lua arrays; axis numbers written to the plans (transpose_forward) are 0-based.

Make a variant:   local base = require "lunet.rules.default"
                  return base.extend{ patch_size = function(ctx, spacing, median) ... end, trainer = {num_epochs = 50} }
extend() copies the rule set, replaces functions/constants, and merges plain tables (trainer, augmentation) key by key.
]]
local R = {}

-- ------------------------------------------------------------------------------------------------ identity
R.name = "default"
R.experiment_planner_used = "ExperimentPlanner"
R.plans_name = "nnUNetPlans"
R.preprocessor_name = "DefaultPreprocessor"
R.network_class_name = "dynamic_network_architectures.architectures.unet.PlainConvUNet"
-- arch_kwargs key holding the encoder convs/blocks per stage
R.encoder_blocks_key = "n_conv_per_stage"
R.architecture_kind = "plain"            -- "plain" (PlainConvUNet) or "resenc" (ResidualEncoderUNet): VRAM estimate

-- ------------------------------------------------------------------------------------------------ constants
R.gpu_memory_gb = 8                      -- VRAM target
R.reference_gb = 8                       -- UNet_reference_val_corresp_GB
R.reference_val_3d = 560000000
R.reference_val_2d = 85000000
R.reference_bs_3d = 2
R.reference_bs_2d = 12
R.base_num_features = 32
R.max_features_3d = 320
R.max_features_2d = 512
R.featuremap_min_edge_length = 4
R.max_numpool = 999999
R.min_batch_size = 2
R.max_dataset_covered = 0.05             -- a batch sees at most 5% of the dataset's voxels
R.blocks_per_stage_encoder = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }
R.blocks_per_stage_decoder = { 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2 }
R.anisotropy_threshold = 3
R.lowres_creation_threshold = 0.25
R.lowres_spacing_increase_factor = 1.03
R.lowres_min_voxel_ratio = 2             -- drop lowres when fullres median voxels / lowres median voxels < this
R.initial_patch_volume_3d = 256 ^ 3      -- the start box has this volume (voxels) ...
R.initial_patch_area_2d = 2048 ^ 2       -- ... or this area in 2d
R.overwrite_target_spacing = false       -- set to {z, y, x} to force the 3d_fullres spacing

-- ------------------------------------------------------------------------------------------------ trainer (fixed)
R.trainer = {
  name = "nnUNetTrainer",
  num_epochs = 1000,
  num_iterations_per_epoch = 250,
  num_val_iterations_per_epoch = 50,
  initial_lr = 1e-2,
  -- the optimiser is torch.optim.SGD(nesterov=True), as nnUNetTrainer; the step has no other (nnUNetTrainerAdam,
  -- nesterov=False are not available): no keys for them
  momentum = 0.99,
  weight_decay = 3e-5,
  -- "poly": PolyLRScheduler, initial_lr * (1 - epoch / num_epochs)^poly_exponent; "cosine": nnUNetTrainerCosAnneal's
  -- CosineAnnealingLR(T_max = num_epochs) stepped with the epoch, initial_lr * (1 + cos(pi * epoch / num_epochs)) / 2;
  -- "warmup_poly": nnUNetTrainer_warmup, initial_lr * (epoch + 1) / warmup_epochs for the first warmup_epochs
  -- epochs (Lin_incr_LRScheduler), then poly over the remaining epochs (PolyLRScheduler_offset), momentum kept
  lr_schedule = "poly",
  warmup_epochs = 50,
  poly_exponent = 0.9,
  grad_clip_norm = 12,
  oversample_foreground_percent = 0.33,
  -- false: the last round(B * (1 - oversample)) samples of a batch are forced foreground (nnUNetTrainer);
  -- true: each sample is forced with probability oversample_foreground_percent
  -- (nnUNetTrainer_probabilisticOversampling's _probabilistic_oversampling); "match_fixed": true, with the
  -- percentage replaced by the share of forced samples the fixed scheme gives for the plans' batch size (what
  -- nnUNetTrainer_probabilisticOversampling computes in __init__)
  probabilistic_oversampling = false,
  enable_deep_supervision = true,
  save_every = 50,
  -- DC_and_CE_loss (DC_and_BCE_loss for region datasets) with MemoryEfficientSoftDiceLoss; batch Dice comes from
  -- the plans (batch_dice). weight_dice = 0: cross-entropy only; weight_ce = 0: Dice only
  loss = { weight_ce = 1, weight_dice = 1, dice_smooth = 1e-5, do_bg = false },
  deep_supervision_last_weight = 0,
  -- "mixed": nnU-Net's AMP (autocast + torch.amp.GradScaler); "fp32"; "auto": mixed on a GPU, fp32 elsewhere (nnU-Net
  -- enables AMP on CUDA only). Today mixed runs the loss scaler below with fp32 storage (docs/training.md)
  precision = "auto",
  -- GradScaler("cuda")'s defaults: the loss scale starts at init_scale, grows by growth_factor after growth_interval
  -- steps in a row without inf/NaN gradients, and is multiplied by backoff_factor (the step skipped) on one
  grad_scaler = { init_scale = 2 ^ 16, growth_factor = 2, backoff_factor = 0.5, growth_interval = 2000 },
}

-- Augmentation (nnunetv2/training/nnUNetTrainer/nnUNetTrainer.py: get_training_transforms), in pipeline
-- order. Ranges are {lo, hi}.
R.augmentation = {
  scale_range = { 0.85, 1.25 },          -- used for the enlarged initial patch (get_patch_size)
  rotation_3d = { -30, 30 },             -- degrees; dummy-2D and 2d (aspect <= 1.5) use +-180, 2d elongated +-15
  rotation_3d_dummy2d = { -180, 180 },
  rotation_2d = { -180, 180 },
  rotation_2d_elongated = { -15, 15 },
  rotation_2d_elongated_aspect = 1.5,
  dummy_2d_aspect = 3,                   -- 3d patch: dummy 2D when max(patch) / patch[1] > 3
  spatial = { p_rotation = 0.2, p_scaling = 0.2, scaling = { 0.7, 1.4 }, p_synchronize_scaling = 1,
              p_elastic = 0, random_crop = false },
  gaussian_noise = { p = 0.1, sigma = { 0, 0.1 }, p_per_channel = 1, synchronize_channels = true },
  gaussian_blur = { p = 0.2, sigma = { 0.5, 1.0 }, p_per_channel = 0.5, synchronize_axes = false },
  brightness = { p = 0.15, multiplier = { 0.75, 1.25 }, p_per_channel = 1 },
  contrast = { p = 0.15, factor = { 0.75, 1.25 }, preserve_range = true, p_per_channel = 1 },
  low_resolution = { p = 0.25, scale = { 0.5, 1 }, p_per_channel = 0.5, synchronize_axes = true },
  gamma_inverted = { p = 0.1, gamma = { 0.7, 1.5 }, p_invert = 1, retain_stats = true, p_per_channel = 1 },
  gamma = { p = 0.3, gamma = { 0.7, 1.5 }, p_invert = 0, retain_stats = true, p_per_channel = 1 },
  -- axes: "auto" (nnU-Net's: (0, 1) for 2d, (0, 1, 2) for 3d), "none", or { ["2d"] = {...}, ["3d"] = {...} }
  -- (0-based spatial axes). The same axes are the checkpoint's inference_allowed_mirroring_axes.
  mirror = { p_per_axis = 0.5, axes = "auto" },
  -- false: no augmentation at all (nnUNetTrainerNoDA: validation transforms, patches sampled at the final size,
  -- no mirroring at inference)
  enabled = true,
  cascade = { p_binary_operator = 0.4, p_per_channel_binary = 0.5, strel_radius = { 1, 8 },
              p_remove_component = 0.2, p_per_channel_remove = 0.5, remove_component_max_fraction = 0.15 },
}

-- ------------------------------------------------------------------------------------------------ numerics helpers
local H = {}
R.helpers = H

--- Round half to even (Python's round on floats).
function H.round(x)
  local f = math.floor(x)
  local d = x - f
  local r
  if d > 0.5 then r = f + 1 elseif d < 0.5 then r = f elseif f % 2 == 0 then r = f else r = f + 1 end
  return math.tointeger(r) or r
end

local function sorted_copy(t)
  local c = table.move(t, 1, #t, 1, {})
  table.sort(c)
  return c
end

--- numpy.percentile (linear method) of a list of numbers, q in [0, 100].
function H.percentile(values, q)
  local s = sorted_copy(values)
  local n = #s
  local vi = (q / 100) * (n - 1)
  local lo = math.floor(vi)
  local g = vi - lo
  local a, b = s[lo + 1], s[math.min(lo + 2, n)]
  local diff = b - a
  if g >= 0.5 then return b - diff * (1 - g) end
  return a + diff * g
end

--- numpy.median: mean of the two middle elements for even n.
function H.median(values)
  local s = sorted_copy(values)
  local n = #s
  if n % 2 == 1 then return s[(n + 1) // 2] + 0.0 end
  return (s[n // 2] + s[n // 2 + 1]) / 2
end

--- Per-axis reduction of a list of vectors.
function H.columns(rows, fn, ...)
  local out = {}
  for d = 1, #rows[1] do
    local col = {}
    for i = 1, #rows do col[i] = rows[i][d] end
    out[d] = fn(col, ...)
  end
  return out
end

function H.prod(v)
  local p = 1.0
  for i = 1, #v do p = p * v[i] end
  return p
end

function H.iprod(v)
  local p = 1
  for i = 1, #v do p = p * v[i] end
  return p
end

--- Index (1-based) of the first maximum (numpy argmax).
function H.argmax(v)
  local k = 1
  for i = 2, #v do if v[i] > v[k] then k = i end end
  return k
end

--- numpy.argsort(v)[-1] for short vectors: the highest index among the maxima (stable sort).
function H.argmax_last(v)
  local k = 1
  for i = 2, #v do if v[i] >= v[k] then k = i end end
  return k
end

function H.copy(v) return table.move(v, 1, #v, 1, {}) end

-- ------------------------------------------------------------------------------------------------ spacing, transpose
--- 3d_fullres target spacing (untransposed, array order): per-axis median, with nnU-Net's anisotropy rule.
function R.target_spacing(ctx)
  local r = ctx.rules
  if r.overwrite_target_spacing then return H.copy(r.overwrite_target_spacing) end
  local fp = ctx.fingerprint
  local target = H.columns(fp.spacings, H.percentile, 50)
  local target_size = H.columns(fp.shapes_after_crop, H.percentile, 50)
  local w = H.argmax(target)
  local other_sp, other_sz = -math.huge, math.huge
  for d = 1, #target do
    if d ~= w then
      other_sp = math.max(other_sp, target[d])
      other_sz = math.min(other_sz, target_size[d])
    end
  end
  local aniso_spacing = target[w] > r.anisotropy_threshold * other_sp
  local aniso_voxels = target_size[w] * r.anisotropy_threshold < other_sz
  if aniso_spacing and aniso_voxels then
    local col = {}
    for i = 1, #fp.spacings do col[i] = fp.spacings[i][w] end
    local t = H.percentile(col, 10)
    if t < other_sp then t = math.max(other_sp, t) + 1e-5 end
    target[w] = t
  end
  return target
end

--- transpose_forward, transpose_backward (0-based axis lists) from the fullres target spacing.
function R.transpose(ctx, spacing)
  local w = H.argmax(spacing) - 1
  local fwd = { w }
  for d = 0, #spacing - 1 do if d ~= w then fwd[#fwd + 1] = d end end
  local bwd = {}
  for i, a in ipairs(fwd) do bwd[a + 1] = i - 1 end
  return fwd, bwd
end

--- New shape after resampling one case (compute_new_shape).
function R.resampled_shape(ctx, shape, old_spacing, new_spacing)
  local out = {}
  for d = 1, #shape do out[d] = H.round(old_spacing[d] / new_spacing[d] * shape[d]) end
  return out
end

-- ------------------------------------------------------------------------------------------------ topology
--- get_pool_and_conv_props: returns {num_pool, strides, kernel_sizes, patch_size (padded), divisor}.
function R.topology(ctx, spacing, patch)
  local r = ctx.rules
  local min_fm, max_numpool = r.featuremap_min_edge_length, r.max_numpool
  local dim = #spacing
  local cur_sp, cur_sz = H.copy(spacing), H.copy(patch)
  local ones = {}
  for d = 1, dim do ones[d] = 1 end
  local strides, kernels = { H.copy(ones) }, {}
  local num_pool, kernel = {}, {}
  for d = 1, dim do num_pool[d] = 0; kernel[d] = 1 end
  while true do
    local valid = {}
    for d = 1, dim do if cur_sz[d] >= 2 * min_fm then valid[#valid + 1] = d end end
    if #valid < 1 then break end
    local m = math.huge
    for _, d in ipairs(valid) do m = math.min(m, cur_sp[d]) end
    local v2 = {}
    for _, d in ipairs(valid) do
      if cur_sp[d] / m < 2 and num_pool[d] < max_numpool then v2[#v2 + 1] = d end
    end
    valid = v2
    if #valid == 1 and cur_sz[valid[1]] < 3 * min_fm then break end
    if #valid < 1 then break end
    local mall = math.huge
    for d = 1, dim do mall = math.min(mall, cur_sp[d]) end
    for d = 1, dim do
      if kernel[d] ~= 3 and cur_sp[d] / mall < 2 then kernel[d] = 3 end
    end
    local stride = H.copy(ones)
    for _, d in ipairs(valid) do
      stride[d] = 2
      num_pool[d] = num_pool[d] + 1
      cur_sp[d] = cur_sp[d] * 2
      cur_sz[d] = math.ceil(cur_sz[d] / 2)
    end
    strides[#strides + 1] = stride
    kernels[#kernels + 1] = H.copy(kernel)
  end
  local divisor, padded = {}, {}
  for d = 1, dim do
    divisor[d] = 1 << num_pool[d]
    local p = patch[d]
    local rem = p % divisor[d]
    local q = (rem == 0) and p or (p + divisor[d] - rem)
    padded[d] = math.tointeger(q) or math.tointeger(math.floor(q))
  end
  local last = {}
  for d = 1, dim do last[d] = 3 end
  kernels[#kernels + 1] = last
  return { num_pool = num_pool, strides = strides, kernel_sizes = kernels, patch_size = padded, divisor = divisor }
end

function R.features_per_stage(ctx, n_stages, dim)
  local r = ctx.rules
  local cap = dim == 2 and r.max_features_2d or r.max_features_3d
  local out = {}
  for s = 1, n_stages do out[s] = math.min(cap, r.base_num_features * (1 << (s - 1))) end
  return out
end

local function truncate(list, n)
  local out = {}
  for i = 1, math.min(n, #list) do out[i] = list[i] end
  return out
end

--- The "architecture" entry of a configuration (nnU-Net's field names; dropout_op etc. are ctx.null).
function R.architecture(ctx, topo, dim)
  local r = ctx.rules
  local n = #topo.strides
  local kw = {
    n_stages = n,
    features_per_stage = r.features_per_stage(ctx, n, dim),
    conv_op = dim == 2 and "torch.nn.modules.conv.Conv2d" or "torch.nn.modules.conv.Conv3d",
    kernel_sizes = topo.kernel_sizes,
    strides = topo.strides,
    [r.encoder_blocks_key] = truncate(r.blocks_per_stage_encoder, n),
    n_conv_per_stage_decoder = truncate(r.blocks_per_stage_decoder, n - 1),
    conv_bias = true,
    norm_op = dim == 2 and "torch.nn.modules.instancenorm.InstanceNorm2d"
      or "torch.nn.modules.instancenorm.InstanceNorm3d",
    norm_op_kwargs = { eps = 1e-05, affine = true },
    dropout_op = ctx.null,
    dropout_op_kwargs = ctx.null,
    nonlin = "torch.nn.LeakyReLU",
    nonlin_kwargs = { inplace = true },
  }
  return {
    network_class_name = r.network_class_name,
    arch_kwargs = kw,
    _kw_requires_import = { "conv_op", "norm_op", "dropout_op", "nonlin" },
  }
end

-- ------------------------------------------------------------------------------------------------ VRAM estimate
local function div_size(size, stride)
  local out = {}
  for d = 1, #size do out[d] = size[d] // stride[d] end
  return out
end

--- compute_conv_feature_map_size: number of conv output elements at batch size 1 (no deep supervision).
function R.estimate_vram(ctx, patch, arch)
  local r = ctx.rules
  local kw = arch.arch_kwargs
  local strides, F = kw.strides, kw.features_per_stage
  local enc = kw[r.encoder_blocks_key]
  local S = #strides
  local total = 0
  local u = H.copy(patch)
  if r.architecture_kind == "resenc" then
    total = total + F[1] * H.iprod(patch)                    -- stem
    local cin = F[1]
    for s = 1, S do
      local o = div_size(u, strides[s])
      local vox = H.iprod(o)
      local strided = false
      for d = 1, #o do if o[d] ~= u[d] then strided = true end end
      total = total + 2 * F[s] * vox
      if cin ~= F[s] or strided then total = total + F[s] * vox end
      total = total + (enc[s] - 1) * 2 * F[s] * vox
      cin = F[s]
      u = o
    end
  else
    for s = 1, S do
      local o = div_size(u, strides[s])
      total = total + enc[s] * F[s] * H.iprod(o)
      u = o
    end
  end
  -- decoder
  local skips = {}
  u = H.copy(patch)
  for s = 1, S - 1 do
    u = div_size(u, strides[s])
    skips[s] = u
  end
  local dec = kw.n_conv_per_stage_decoder
  for j = 1, S - 1 do
    local k = skips[S - j]
    local C = F[S - j]
    local vox = H.iprod(k)
    total = total + dec[j] * C * vox + C * vox
    if j == S - 1 then total = total + ctx.num_classes * vox end
  end
  return total
end

--- Shrink-loop condition: true while the estimate is too large for the reference.
function R.too_big(ctx, estimate, reference, ref_bs)
  return (estimate / ref_bs * 2) > reference
end

--- Axis (1-based) to shrink: largest patch/median ratio, highest index among ties (numpy argsort()[-1]).
function R.shrink_axis(ctx, patch, median)
  local ratios = {}
  for d = 1, #patch do ratios[d] = patch[d] / median[d] end
  return H.argmax_last(ratios)
end

--- VRAM reference value and reference batch size for a configuration of dimension dim.
function R.reference(ctx, dim)
  local r = ctx.rules
  local ref = (dim == 2 and r.reference_val_2d or r.reference_val_3d) * (ctx.gpu_memory_gb / r.reference_gb)
  return ref, (dim == 2 and r.reference_bs_2d or r.reference_bs_3d)
end

-- ------------------------------------------------------------------------------------------------ patch size
--- Start box: physical-size-isotropic box of volume 256^3 (2048^2 in 2d), clipped to the median shape.
function R.initial_patch_size(ctx, spacing, median)
  local r = ctx.rules
  local dim = #spacing
  local tmp = {}
  for d = 1, dim do tmp[d] = 1 / spacing[d] end
  local f
  if dim == 3 then f = (r.initial_patch_volume_3d / H.prod(tmp)) ^ (1 / 3)
  else f = (r.initial_patch_area_2d / H.prod(tmp)) ^ (1 / 2) end
  local p = {}
  for d = 1, dim do
    local v = H.round(tmp[d] * f)
    p[d] = (v <= median[d]) and v or median[d]
  end
  return p
end

--- Patch size: start box -> topology -> shrink until the VRAM estimate fits.
--- Returns patch (ints), topology, architecture, estimate. An override may return only the patch: the planner then
--- derives the rest (and rejects a patch that is not divisible by 2^pools).
function R.patch_size(ctx, spacing, median)
  local r = ctx.rules
  local dim = #spacing
  local topo = r.topology(ctx, spacing, r.initial_patch_size(ctx, spacing, median))
  local patch = topo.patch_size
  local arch = r.architecture(ctx, topo, dim)
  local estimate = r.estimate_vram(ctx, patch, arch)
  local reference, ref_bs = r.reference(ctx, dim)
  while r.too_big(ctx, estimate, reference, ref_bs) do
    local a = r.shrink_axis(ctx, patch, median)
    local tmp = H.copy(patch)
    tmp[a] = tmp[a] - topo.divisor[a]
    local div2 = r.topology(ctx, spacing, tmp).divisor
    patch = H.copy(patch)
    patch[a] = patch[a] - div2[a]
    topo = r.topology(ctx, spacing, patch)
    patch = topo.patch_size
    arch = r.architecture(ctx, topo, dim)
    estimate = r.estimate_vram(ctx, patch, arch)
  end
  return patch, topo, arch, estimate
end

--- Batch size from the estimate, capped to max_dataset_covered of the dataset's voxels, at least min_batch_size.
function R.batch_size(ctx, estimate, patch, n_voxels_dataset, dim)
  local r = ctx.rules
  local reference, ref_bs = r.reference(ctx, dim)
  local bs = H.round((reference / estimate) * ref_bs)
  local cap = H.round(n_voxels_dataset * r.max_dataset_covered / H.prod(patch))
  return math.max(math.min(bs, cap), r.min_batch_size)
end

-- ------------------------------------------------------------------------------------------------ normalisation
R.normalization_by_channel_name = {
  ct = "CTNormalization", nonorm = "NoNormalization", zscore = "ZScoreNormalization",
  rescale_to_0_1 = "RescaleTo01Normalization", rgb_to_0_1 = "RGBTo01Normalization",
}
R.default_normalization = "ZScoreNormalization"
R.mask_for_norm_schemes = { ZScoreNormalization = true }
R.mask_for_norm_max_relative_size = 0.75

--- Per channel (in channel order) normalisation scheme names and use_mask_for_norm flags.
function R.normalization(ctx)
  local r = ctx.rules
  local names = ctx.channel_names
  local schemes, mask = {}, {}
  local crop = ctx.fingerprint.median_relative_size_after_cropping < r.mask_for_norm_max_relative_size
  for i, n in ipairs(names) do
    schemes[i] = r.normalization_by_channel_name[string.lower(n)] or r.default_normalization
    mask[i] = crop and (r.mask_for_norm_schemes[schemes[i]] == true) or false
  end
  return schemes, mask
end

-- ------------------------------------------------------------------------------------------------ resampling
function R.resampling(ctx)
  return {
    resampling_fn_data = "resample_data_or_seg_to_shape",
    resampling_fn_seg = "resample_data_or_seg_to_shape",
    resampling_fn_data_kwargs = { is_seg = false, order = 3, order_z = 0, force_separate_z = ctx.null },
    resampling_fn_seg_kwargs = { is_seg = true, order = 1, order_z = 0, force_separate_z = ctx.null },
    resampling_fn_probabilities = "resample_data_or_seg_to_shape",
    resampling_fn_probabilities_kwargs = { is_seg = false, order = 1, order_z = 0, force_separate_z = ctx.null },
  }
end

-- ------------------------------------------------------------------------------------------------ configurations
function R.data_identifier(ctx, config_name)
  return ctx.plans_name .. "_" .. config_name
end

--- Whether to add 3d_lowres: while the fullres patch covers less than lowres_creation_threshold of the median image.
function R.needs_lowres(ctx, patch_voxels, median_voxels)
  return patch_voxels / median_voxels < ctx.rules.lowres_creation_threshold
end

--- One step of lowres spacing growth (anisotropic axes first).
function R.lowres_spacing_step(ctx, spacing)
  local r = ctx.rules
  local mx = math.max(table.unpack(spacing))
  local out = H.copy(spacing)
  local any = false
  for d = 1, #spacing do if mx / spacing[d] > 2 then any = true end end
  for d = 1, #spacing do
    if not any or mx / spacing[d] > 2 then out[d] = out[d] * r.lowres_spacing_increase_factor end
  end
  return out
end

-- batch_dice per configuration
function R.batch_dice(ctx, config_name, has_lowres)
  if config_name == "2d" then return true end
  if config_name == "3d_lowres" then return false end
  return has_lowres
end

--- Deep-supervision loss weights for n outputs (full resolution first): 1/2^i, last = 0, normalised.
function R.deep_supervision_weights(ctx, n)
  local w, s = {}, 0
  for i = 1, n do w[i] = 1 / (1 << (i - 1)) end
  if n > 1 then w[n] = ctx.rules.trainer.deep_supervision_last_weight end
  for i = 1, n do s = s + w[i] end
  for i = 1, n do w[i] = w[i] / s end
  return w
end

-- ------------------------------------------------------------------------------------------------ extension
local function is_plain_table(v)
  return type(v) == "table" and getmetatable(v) == nil and not (#v > 0)
end

local function deep_copy(v)
  if type(v) ~= "table" then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = deep_copy(x) end
  return setmetatable(out, getmetatable(v))
end

local function merge(dst, src)
  for k, v in pairs(src) do
    if is_plain_table(v) and is_plain_table(dst[k]) then merge(dst[k], v)
    else dst[k] = deep_copy(v) end
  end
  return dst
end

--- A new rule set: a copy of this one with the given rules replaced (plain tables merged key by key).
--- Callable as base.extend{...} or base:extend{...}. The result records its parent as .base, so an override can
--- call the rule it replaces: base.patch_size(ctx, ...).
local function make_extend(parent)
  return function(a, b)
    local overrides = (b == nil) and a or b
    if type(overrides) ~= "table" then error("extend: expected a table of rules", 2) end
    local out = {}
    for k, v in pairs(parent) do out[k] = deep_copy(v) end
    out.helpers = H
    out.base = parent
    merge(out, overrides)
    out.extend = make_extend(out)
    return out
  end
end
R.extend = make_extend(R)

return R
