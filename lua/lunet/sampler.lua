--[[ lunet.sampler: nnU-Net's training batches (nnunetv2/training/dataloading/data_loader.py:
nUNetDataLoader) with augmentation (nnUNetTrainer.get_training_transforms).

  local sampler = require "lunet.sampler"
  local loader = sampler.new{
    cases = {...},              -- in-memory {data=Tensor (C,Z,Y,X) f32, seg=Tensor (1,Z,Y,X), class_locations={t1, t2, ...},
                                --   annotated=k (index of the ignore label's "annotated" key, optional)}, or store cases
                                --   with case.shape {Z,Y,X}, case.class_locations and case:read_patch(lo, hi) -> data, seg
    patch_size = {py, px} | {pz, py, px},
    batch_size = 2, oversample = 0.33, seed = 0,
    probabilistic = false,      -- true: each sample forced foreground with probability oversample (nnU-Net's
                                --   probabilistic_oversampling) instead of the batch's last round(B*(1-oversample))
    augmentation = rules.augmentation (optional), ds_scales = {{1,1,1},{1,.5,.5},...} (optional),
    validation = false,         -- true: final-size patches, no augmentation (nnU-Net's validation loader)
    has_ignore = false, threads = 2, mask_channels = {..} (use_mask_for_norm channels, 1-based),
    regions = nil,              -- region-based training: foreground regions {{1,2}, 2, ...} (lunet.labels.info)
    ignore_label = nil,         -- with regions: appended as the last (ignore mask) channel, as nnU-Net
    check = nil,                -- function(case, data, seg) called on every patch read, before augmentation
    cascade = nil }             -- {labels = foreground labels}: the cases' seg has the previous stage's segmentation
                                --   as channel 2 (lunet.cascade.with_prev_seg); after augmentation it becomes one-hot
                                --   data channels, randomly perturbed in training (lunet.cascade)
  local b = loader:next_batch()   -- b.data (B,C,Z,Y,X) f32, b.target {per DS scale (B,1,..) i16}, b.keys, b.force_fg,
                                  -- b.boxes {lo, hi}, b.records (augmentation draws)
  -- with regions: b.regions (B,R[+1],Z,Y,X) i16 0/1 masks of the augmented seg (ConvertSegmentationToRegions,
  -- after augmentation and before deep-supervision downsampling, as nnU-Net), b.target built from them
  loader:state() / loader:set_state(s)   -- batch counter (for --continue: the stream depends on seed and counter)

Batch k draws everything from rng(seed):child(k): sample j's case, box and class from child(k):child(2^20 + j),
its augmentation from child(k):child(j) (in C, over threads), so batches do not depend on the thread count.
]]
local core = require "lunet.core"
local augment = require "lunet.augment"
local cascade = require "lunet.cascade"

local M = {}
local Loader = {}
Loader.__index = Loader

local SAMPLE_STREAM = 1 << 20
local CASCADE_STREAM = 2 << 20

local function case_shape(c)
  if c.shape then return c.shape end
  local s = c.data.shape
  return { s[2], s[3], s[4] }
end

function M.new(o)
  if type(o) ~= "table" or type(o.cases) ~= "table" or #o.cases == 0 then
    error("sampler.new: cases must be a non-empty list", 2)
  end
  if type(o.patch_size) ~= "table" then error("sampler.new: patch_size is required", 2) end
  local cfg = augment.configure(o.patch_size, o.augmentation, { mask_channels = o.mask_channels, mirror_axes = o.mirror_axes })
  local self = setmetatable({
    cases = o.cases, cfg = cfg, batch_size = o.batch_size or 2, oversample = o.oversample or 0.33,
    seed = o.seed or 0, validation = o.validation or false, has_ignore = o.has_ignore or false,
    threads = o.threads or 2, ds_scales = o.ds_scales, counter = 0,
    regions = o.regions, ignore_label = o.ignore_label, check = o.check, probabilistic = o.probabilistic or false,
    cascade = o.cascade,
  }, Loader)
  self.root = core.rng.new(self.seed, o.stream or (self.validation and 1 or 0))
  self.sampled_patch = self.validation and cfg.final_patch or cfg.initial_patch
  return self
end

--- Which samples of a batch are forced foreground (1-based booleans).
function M.forced(batch_size, oversample)
  local f = {}
  for j = 0, batch_size - 1 do f[j + 1] = core.sampler.force_fg(batch_size, oversample, j) end
  return f
end

function Loader:state() return { counter = self.counter, seed = self.seed } end
function Loader:set_state(s) self.counter = s.counter end

local function read(c, lo, hi)
  if c.read_patch then return c:read_patch(lo, hi) end
  return core.sampler.crop(c.data, lo, hi, 0), c.seg and core.sampler.crop(c.seg, lo, hi, -1)
end

function Loader:next_batch()
  local brng = self.root:child(self.counter)
  self.counter = self.counter + 1
  local B = self.batch_size
  local datas, segs, keys, forced, boxes = {}, {}, {}, {}, {}
  for j = 0, B - 1 do
    local s = brng:child(SAMPLE_STREAM + j)
    local ci = s:int(1, #self.cases)
    local c = self.cases[ci]
    local force
    if self.probabilistic then force = s:double() < self.oversample -- nnU-Net: np.random.uniform() < oversample
    else force = core.sampler.force_fg(B, self.oversample, j) end
    local lo, hi, sel = core.sampler.bbox(case_shape(c), self.sampled_patch, self.cfg.final_patch, force,
      c.class_locations, s, c.annotated, self.has_ignore)
    local d, g = read(c, lo, hi)
    if self.check then self.check(c, d, g) end
    datas[j + 1], segs[j + 1] = d, g
    keys[j + 1], forced[j + 1], boxes[j + 1] = c.key or ci, force, { lo = lo, hi = hi, class = sel }
  end
  local img = core.sampler.stack(datas, "f32")
  local seg = segs[1] and core.sampler.stack(segs, "i16") or nil
  local oimg, oseg, records = augment.apply(self.cfg, brng, img, seg, self.threads, self.validation)
  local cascade_records
  if self.cascade and oseg then
    -- nnU-Net's order: after RemoveLabel (-1 -> 0, done in the C augmentation), before regions and deep supervision
    oimg, oseg = cascade.move_to_data(oimg, oseg, self.cascade.labels)
    if not self.validation then
      oimg, cascade_records = cascade.augment(oimg, #self.cascade.labels,
        function(b) return brng:child(CASCADE_STREAM + b) end, self.cfg.dim)
    end
  end
  local regions
  if oseg and self.regions then
    regions = core.regions.convert(oseg, self.regions, { ignore_label = self.ignore_label, dtype = "i16" })
  end
  local target = regions or oseg
  if target and self.ds_scales then target = augment.ds_targets(target, self.ds_scales) end
  return { data = oimg, target = target, seg = oseg, regions = regions, keys = keys, force_fg = forced, boxes = boxes,
           records = records, cascade_records = cascade_records }
end

return M
