--[[ lunet.augment: nnU-Net v2's training augmentation configuration and application.

  local augment = require "lunet.augment"
  local cfg = augment.configure(patch_size, aug)  -- aug: rules' augmentation table (default: rules/default.lua)
  -- cfg.dim, cfg.dummy2d, cfg.rotation (radians), cfg.mirror_axes (nnU-Net's, 0-based), cfg.initial_patch {Z,Y,X},
  -- cfg.final_patch {Z,Y,X}, cfg.params (the C parameter table), cfg.val_params (no augmentation)
  local img, seg, records = augment.apply(cfg, rng, img_batch, seg_batch, threads)   -- (B,C,Z,Y,X) f32 / i16
  -- deep-supervision target scales (nnUNetTrainer._get_deep_supervision_scales)
  local scales = augment.ds_scales(pool_op_kernel_sizes)
  local targets = augment.ds_targets(seg, scales)

Rules (nnUNetTrainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size):
2-D patch: +-15 deg if max/min > 1.5 else +-180, mirror (0, 1); 3-D: dummy 2D when
max(patch)/patch[1] > 3 (+-180 in-plane), else +-30; mirror (0, 1, 2). initial patch = get_patch_size(patch, rot,
scale 0.85), axis 0 kept for dummy 2D.
]]
local core = require "lunet.core"

local M = {}

local function default_table()
  local ok, rules = pcall(require, "lunet.rules.default")
  if ok and type(rules) == "table" and type(rules.augmentation) == "table" then return rules.augmentation end
  -- the same numbers, for a checkout without rules/
  return {
    scale_range = { 0.85, 1.25 }, rotation_3d = { -30, 30 }, rotation_3d_dummy2d = { -180, 180 },
    rotation_2d = { -180, 180 }, rotation_2d_elongated = { -15, 15 }, rotation_2d_elongated_aspect = 1.5,
    dummy_2d_aspect = 3,
    spatial = { p_rotation = 0.2, p_scaling = 0.2, scaling = { 0.7, 1.4 } },
    gaussian_noise = { p = 0.1, sigma = { 0, 0.1 } },
    gaussian_blur = { p = 0.2, sigma = { 0.5, 1.0 }, p_per_channel = 0.5 },
    brightness = { p = 0.15, multiplier = { 0.75, 1.25 } },
    contrast = { p = 0.15, factor = { 0.75, 1.25 } },
    low_resolution = { p = 0.25, scale = { 0.5, 1 }, p_per_channel = 0.5 },
    gamma_inverted = { p = 0.1, gamma = { 0.7, 1.5 } },
    gamma = { p = 0.3, gamma = { 0.7, 1.5 } },
    mirror = { p_per_axis = 0.5 },
  }
end
M.defaults = default_table

local function deg(d) return d / 360 * 2 * math.pi end

--- Rotation range, dummy 2D and mirror axes for a patch (2 or 3 entries), as
--- configure_rotation_dummyDA_mirroring_and_inital_patch_size.
function M.configure(patch_size, aug, opts)
  aug = aug or default_table()
  opts = opts or {}
  local n = #patch_size
  if n ~= 2 and n ~= 3 then error(("augment.configure: patch size must have 2 or 3 entries, got %d"):format(n), 2) end
  local mx, mn = math.max(table.unpack(patch_size)), math.min(table.unpack(patch_size))
  local dummy2d, rot, mirror_axes = false, nil, nil
  if n == 2 then
    rot = (mx / mn > (aug.rotation_2d_elongated_aspect or 1.5)) and aug.rotation_2d_elongated or aug.rotation_2d
    mirror_axes = { 0, 1 }
  else
    dummy2d = mx / patch_size[1] > (aug.dummy_2d_aspect or 3)
    rot = dummy2d and aug.rotation_3d_dummy2d or aug.rotation_3d
    mirror_axes = { 0, 1, 2 }
  end
  if opts.mirror_axes then mirror_axes = opts.mirror_axes end
  local half = deg(math.max(math.abs(rot[1]), math.abs(rot[2])))
  local initial = core.sampler.initial_patch(patch_size, half, math.min(aug.scale_range[1], aug.scale_range[2]))
  if dummy2d then initial[1] = patch_size[1] end
  local final3 = n == 2 and { 1, patch_size[1], patch_size[2] } or { patch_size[1], patch_size[2], patch_size[3] }
  local init3 = n == 2 and { 1, initial[1], initial[2] } or initial
  -- mirror flags over (Z, Y, X)
  local mirror = { false, false, false }
  for _, a in ipairs(mirror_axes) do mirror[(n == 2 and a + 2 or a + 1)] = true end
  local sp, gn, gb = aug.spatial or {}, aug.gaussian_noise or {}, aug.gaussian_blur or {}
  local br, ct, lr = aug.brightness or {}, aug.contrast or {}, aug.low_resolution or {}
  local gi, gm = aug.gamma_inverted or {}, aug.gamma or {}
  local params = {
    dim = n, dummy2d = dummy2d, rotation = half,
    p_rotation = sp.p_rotation, rot_lo = deg(rot[1]), rot_hi = deg(rot[2]),
    p_scaling = sp.p_scaling, scale_lo = sp.scaling and sp.scaling[1], scale_hi = sp.scaling and sp.scaling[2],
    p_noise = gn.p, noise_lo = gn.sigma and gn.sigma[1], noise_hi = gn.sigma and gn.sigma[2],
    p_blur = gb.p, blur_p_channel = gb.p_per_channel, blur_lo = gb.sigma and gb.sigma[1], blur_hi = gb.sigma and gb.sigma[2],
    p_brightness = br.p, brightness_lo = br.multiplier and br.multiplier[1], brightness_hi = br.multiplier and br.multiplier[2],
    p_contrast = ct.p, contrast_lo = ct.factor and ct.factor[1], contrast_hi = ct.factor and ct.factor[2],
    p_lowres = lr.p, lowres_p_channel = lr.p_per_channel, lowres_lo = lr.scale and lr.scale[1], lowres_hi = lr.scale and lr.scale[2],
    p_gamma_inv = gi.p, p_gamma = gm.p, gamma_lo = gm.gamma and gm.gamma[1], gamma_hi = gm.gamma and gm.gamma[2],
    mirror = mirror, p_mirror = aug.mirror and aug.mirror.p_per_axis,
    mask_channels = opts.mask_channels,
  }
  local val_params = {
    dim = n, dummy2d = false, p_rotation = 0, p_scaling = 0, p_noise = 0, p_blur = 0, p_brightness = 0,
    p_contrast = 0, p_lowres = 0, p_gamma_inv = 0, p_gamma = 0, p_mirror = 0, mirror = { false, false, false },
    mask_channels = opts.mask_channels,
  }
  return {
    dim = n, dummy2d = dummy2d, rotation = half, mirror_axes = mirror_axes,
    initial_patch = init3, final_patch = final3, params = params, val_params = val_params,
  }
end

--- Augments a batch: img (B,C,Z,Y,X) f32 of the sampled size, seg (B,Cs,Z,Y,X) i16 or nil -> final size.
function M.apply(cfg, rng, img, seg, threads, validation)
  return core.augment.batch(validation and cfg.val_params or cfg.params, rng, img, seg, cfg.final_patch, threads or 2)
end

--- Deep-supervision scales from pool_op_kernel_sizes (list of per-stage strides): cumulative product,
--- inverted, last dropped. 2-D strides give {1, sy, sx} scales (axis Z kept).
function M.ds_scales(strides)
  local n = #strides[1]
  local cum = {}
  for i = 1, n do cum[i] = 1 end
  local out = {}
  for s = 1, #strides - 1 do
    for i = 1, n do cum[i] = cum[i] * strides[s][i] end
    local sc = {}
    for i = 1, n do sc[i] = 1 / cum[i] end
    if n == 2 then sc = { 1, sc[1], sc[2] } end
    out[s] = sc
  end
  return out
end

--- One target per scale: scale 1 is seg itself, others nearest-exact downsampled.
function M.ds_targets(seg, scales)
  local t = {}
  for i, sc in ipairs(scales) do
    if sc[1] == 1 and sc[2] == 1 and sc[3] == 1 then t[i] = seg else t[i] = core.augment.downsample_seg(seg, sc) end
  end
  return t
end

return M
