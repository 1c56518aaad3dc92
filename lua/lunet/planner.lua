--[[ lunet.planner: evaluates a rule set (rules/*.lua) against a dataset fingerprint and returns nnU-Net v2 plans.

  local planner = require "lunet.planner"
  local plans = planner.plan(fingerprint, {
      dataset_json = dj,              -- table or path of dataset.json (channel_names, labels, numTraining, file_ending)
      rules = "default",              -- preset name (default|resenc_m|resenc_l|resenc_xl or nnU-Net's planner class
                                      -- name), path of a rule file, or a rule table (a table of overrides is applied
                                      -- on top of the default rules)
      gpu_memory_gb = 8,              -- VRAM target (default: the rule set's)
      plans_name = "nnUNetPlans",     -- default: the rule set's
      overwrite_target_spacing = { 1, 1, 1 },  -- nnU-Net's planner argument: the 3d_fullres target spacing in the
                                      -- fingerprint's axis order, used instead of the target_spacing rule (so the
                                      -- transpose, 3d_lowres and 2d follow from it, as in nnU-Net)
      preprocessor_name = "DefaultPreprocessor",  -- written into every configuration (default: the rule set's)
      dataset_name = "Dataset004_Hippocampus",
      rule_timeout = 10,              -- seconds one rule call may run (default $LUNET_RULE_TIMEOUT or 10; 0: none)
  })
  planner.write(plans, path)          -- nnU-Net's plans.json (key order as nnU-Net writes it, indent 4, atomic)
  local p = planner.read(path)        -- reads Lunet's or nnU-Net's plans
  local cfg = planner.configuration(p, "3d_cascade_fullres")   -- resolves inherits_from
  local r = planner.load_rules("my_rules.lua")

`lunet.plan(fp, opts)` is the same as planner.plan (the module is callable).
]]
local json = require "lunet.util.json"

local M = {}

M.presets = {
  default = "default", resenc_m = "resenc_m", resenc_l = "resenc_l", resenc_xl = "resenc_xl",
  ExperimentPlanner = "default", nnUNetPlannerResEncM = "resenc_m", nnUNetPlannerResEncL = "resenc_l",
  nnUNetPlannerResEncXL = "resenc_xl",
}

-- ------------------------------------------------------------------------------------------------ time limit
-- Rule files are Lua code: one that loops forever would hang `lunet plan`. Each rule call runs under a count hook
-- (every HOOK_COUNT VM instructions, about a millisecond of Lua) that checks the wall clock and raises once the
-- call has run longer than the limit; the hook that was set before (a debugger, a profiler) is put back afterwards.
-- Rules of the shipped presets (rules/*.lua by name) run without it: a hook makes Lua check every instruction
-- (planning a 100-case dataset with a rule file: 5.7 -> 7.4 ms). A loop inside a coroutine the rule creates is not
-- covered (hooks are per coroutine).
M.DEFAULT_RULE_TIMEOUT = 10
local HOOK_COUNT = 100000
local TIMEOUT = setmetatable({}, { __tostring = function() return "rule time limit exceeded" end })

--- The limit in seconds for one rule call: opts.rule_timeout, else $LUNET_RULE_TIMEOUT, else 10; 0 (or "off")
--- turns it off. A value that is not a number is an error naming where it came from.
function M.rule_timeout(opt)
  local v, from = opt, "rule_timeout"
  if v == nil then v, from = os.getenv("LUNET_RULE_TIMEOUT"), "LUNET_RULE_TIMEOUT" end
  if v == nil or v == "" then return M.DEFAULT_RULE_TIMEOUT end
  if v == "off" or v == false then return 0 end
  local n = tonumber(v)
  if not n or n < 0 or n ~= n then
    error(string.format("%s must be a number of seconds >= 0 (0 or off: no limit), got '%s'", from, tostring(v)), 0)
  end
  return n
end

-- The file a rule function was defined in (its chunk name), for messages.
local function rule_source(fn)
  local info = debug.getinfo(fn, "S")
  local src = info and info.source or "?"
  if src:sub(1, 1) == "@" or src:sub(1, 1) == "=" then return src:sub(2) end
  return info.short_src
end

local now = os.clock
do
  local ok, clock = pcall(require, "lunet.util.clock")
  if ok and type(clock) == "table" and clock.now then now = clock.now end
end

-- Runs fn(...) under xpcall with the time limit (seconds; 0: none). Returns table.pack of xpcall's results and
-- whether the limit stopped it.
local limited
function limited(limit, fn, ...)
  local timed_out = false
  local handler = function(e)
    if e == TIMEOUT or timed_out then return TIMEOUT end
    if os.getenv("LUNET_TRACEBACK") then return debug.traceback(tostring(e), 2) end
    return tostring(e)
  end
  local old_hook, old_mask, old_count
  if limit > 0 then
    local deadline = now() + limit
    old_hook, old_mask, old_count = debug.gethook()
    local function hook()
      if timed_out then
        -- past the deadline the hook fires on every instruction, so that a rule's own pcall cannot swallow the
        -- error: the next instruction after it raises again, all the way out (not in limited or its handler)
        local f = debug.getinfo(2, "f").func
        if f == limited or f == handler then return end
        error(TIMEOUT, 0)
      elseif now() > deadline then
        timed_out = true
        debug.sethook(hook, "", 1)
        error(TIMEOUT, 0)
      end
    end
    debug.sethook(hook, "", HOOK_COUNT)
  end
  local res = table.pack(xpcall(fn, handler, ...))
  if limit > 0 then
    if old_hook then debug.sethook(old_hook, old_mask, old_count) else debug.sethook() end
  end
  return res, timed_out or res[2] == TIMEOUT
end

-- ------------------------------------------------------------------------------------------------ rule loading
local function is_rule_set(t)
  return type(t) == "table" and type(t.patch_size) == "function" and type(t.topology) == "function"
    and type(t.target_spacing) == "function"
end

--- Load a rule set: preset name, path of a Lua file, or table. Errors name the user's file and line.
function M.load_rules(spec, opts)
  spec = spec or "default"
  if type(spec) == "table" then
    if is_rule_set(spec) then return spec, spec.name or "table" end
    return require("lunet.rules.default").extend(spec), "table"
  end
  if type(spec) ~= "string" then error("planner: rules must be a preset name, a file path or a table", 3) end
  local preset = M.presets[spec]
  if preset then
    local r = require("lunet.rules." .. preset)
    return r, preset
  end
  if not (spec:find("/", 1, true) or spec:match("%.lua$")) then
    local names = {}
    for k in pairs(M.presets) do names[#names + 1] = k end
    table.sort(names)
    error(string.format("unknown rules '%s' (presets: %s; or give the path of a .lua rule file)", spec,
      table.concat(names, ", ")), 3)
  end
  local chunk, err = loadfile(spec, "t")
  if not chunk then
    local f = io.open(spec, "r")
    if not f then error(string.format("rule file %s: cannot open it", spec), 3) end
    f:close()
    error("rule file " .. tostring(err), 3)       -- err reads "path:line: message"
  end
  local limit = M.rule_timeout(opts and opts.rule_timeout)
  local r, timed_out = limited(limit, chunk)
  if timed_out then
    error(string.format("rule file %s: did not finish loading within %s s (a loop that never ends? the limit is " ..
      "LUNET_RULE_TIMEOUT, in seconds)", spec, tostring(limit)), 3)
  end
  local ok, res = r[1], r[2]
  if not ok then error("rule file " .. spec .. " failed while loading: " .. tostring(res), 3) end
  if type(res) ~= "table" then
    error(string.format("rule file %s must return a table of rules (got %s)", spec, type(res)), 3)
  end
  -- a misspelt rule (pach_size = ...) would otherwise be ignored silently and the default used: refuse keys the
  -- rule set it extends does not have, as trainer files do
  local parent = is_rule_set(res) and res.base or require("lunet.rules.default")
  if type(parent) == "table" then
    local own = { name = true, base = true, helpers = true, extend = true }
    for k in pairs(res) do
      if parent[k] == nil and not own[k] then
        local known = {}
        for kk in pairs(parent) do if not own[kk] then known[#known + 1] = tostring(kk) end end
        table.sort(known)
        error(string.format("rule file %s: unknown rule '%s' (known: %s)", spec, tostring(k),
          table.concat(known, ", ")), 0)
      end
    end
  end
  if not is_rule_set(res) then res = require("lunet.rules.default").extend(res) end
  if res.name == nil or res.name == "default" then res.name = spec end
  return res, spec
end

-- ------------------------------------------------------------------------------------------------ helpers
local function reject(rule, fmt, ...)
  error(string.format("impossible plan from rule '%s': " .. fmt, rule, ...), 0)
end

-- Call a rule; a Lua error inside it is reported with the rule's name (the message keeps file:line).
local function call(ctx, name, ...)
  local fn = ctx.rules[name]
  if type(fn) ~= "function" then reject(name, "rule is missing or not a function (got %s)", type(fn)) end
  local limit = ctx.rule_timeout or 0
  local res, timed_out = limited(limit, fn, ctx, ...)
  if not res[1] then
    if timed_out then
      error(string.format("rule file %s: rule '%s' did not finish within %s s (a loop that never ends? the limit " ..
        "is LUNET_RULE_TIMEOUT, in seconds)", rule_source(fn), name, tostring(limit)), 0)
    end
    error(string.format("rule '%s' failed: %s", name, res[2]), 0)
  end
  return table.unpack(res, 2, res.n)
end

local function sorted_keys(t)
  local ks = json.keys(t)
  local allnum = true
  for _, k in ipairs(ks) do if tonumber(k) == nil then allnum = false end end
  if allnum then table.sort(ks, function(a, b) return tonumber(a) < tonumber(b) end) end
  return ks
end

local function permute(v, order)
  local out = {}
  for i, a in ipairs(order) do out[i] = v[a + 1] end
  return out
end

local function tofloat(v)
  local out = {}
  for i = 1, #v do out[i] = v[i] + 0.0 end
  return out
end

local function check_vector(rule, what, v, n)
  if type(v) ~= "table" or #v ~= n then
    reject(rule, "%s must be a list of %d numbers", what, n)
  end
  for d = 1, n do
    if type(v[d]) ~= "number" or v[d] ~= v[d] then reject(rule, "%s[%d] is not a number", what, d) end
  end
end

local function fmt_list(v)
  local s = {}
  for i = 1, #v do s[i] = tostring(v[i]) end
  return "[" .. table.concat(s, ", ") .. "]"
end

-- Key order of nnU-Net's plans.json (json.dump with sort_keys=False keeps insertion order).
local ORDER = {
  plans = { "dataset_name", "plans_name", "original_median_spacing_after_transp",
            "original_median_shape_after_transp", "image_reader_writer", "transpose_forward", "transpose_backward",
            "configurations", "experiment_planner_used", "label_manager",
            "foreground_intensity_properties_per_channel" },
  config = { "inherits_from", "data_identifier", "preprocessor_name", "batch_size", "patch_size",
             "median_image_size_in_voxels", "spacing", "normalization_schemes", "use_mask_for_norm",
             "resampling_fn_data", "resampling_fn_seg", "resampling_fn_data_kwargs", "resampling_fn_seg_kwargs",
             "resampling_fn_probabilities", "resampling_fn_probabilities_kwargs", "architecture", "batch_dice",
             "next_stage", "previous_stage" },
  architecture = { "network_class_name", "arch_kwargs", "_kw_requires_import" },
  arch_kwargs = { "n_stages", "features_per_stage", "conv_op", "kernel_sizes", "strides", "n_conv_per_stage",
                  "n_blocks_per_stage", "n_conv_per_stage_decoder", "conv_bias", "norm_op", "norm_op_kwargs",
                  "dropout_op", "dropout_op_kwargs", "nonlin", "nonlin_kwargs" },
  norm_op_kwargs = { "eps", "affine" },
  resampling = { "is_seg", "order", "order_z", "force_separate_z" },
}

local function object(t, order)
  local keys = {}
  if order then for _, k in ipairs(order) do if t[k] ~= nil then keys[#keys + 1] = k end end end
  return json.object(t, keys)
end

local function array(t)
  for i = 1, #t do if type(t[i]) == "table" and not json.is_array(t[i]) then return t end end
  for i = 1, #t do if type(t[i]) == "table" then array(t[i]) end end
  return json.array(t)
end

local function order_config(c)
  object(c, ORDER.config)
  for _, k in ipairs { "patch_size", "median_image_size_in_voxels", "spacing", "normalization_schemes",
    "use_mask_for_norm" } do
    if type(c[k]) == "table" then array(c[k]) end
  end
  for _, k in ipairs { "resampling_fn_data_kwargs", "resampling_fn_seg_kwargs", "resampling_fn_probabilities_kwargs" } do
    if type(c[k]) == "table" then object(c[k], ORDER.resampling) end
  end
  local a = c.architecture
  if type(a) == "table" then
    object(a, ORDER.architecture)
    if type(a._kw_requires_import) == "table" then array(a._kw_requires_import) end
    local kw = a.arch_kwargs
    if type(kw) == "table" then
      object(kw, ORDER.arch_kwargs)
      for _, k in ipairs { "features_per_stage", "kernel_sizes", "strides", "n_conv_per_stage", "n_blocks_per_stage",
        "n_conv_per_stage_decoder" } do
        if type(kw[k]) == "table" then array(kw[k]) end
      end
      if type(kw.norm_op_kwargs) == "table" then object(kw.norm_op_kwargs, ORDER.norm_op_kwargs) end
      if type(kw.nonlin_kwargs) == "table" then object(kw.nonlin_kwargs) end
    end
  end
  return c
end

--- Reader/writer class name nnU-Net would pick for a dataset.json.
function M.image_reader_writer(dj)
  if dj.overwrite_image_reader_writer then return dj.overwrite_image_reader_writer end
  local e = string.lower(dj.file_ending or ".nii.gz")
  if e == ".png" or e == ".bmp" or e == ".tif" then return "NaturalImage2DIO" end
  if e == ".tiff" then return "Tiff3DIO" end
  return "SimpleITKIO"
end

-- ------------------------------------------------------------------------------------------------ planning
local function plan_configuration(ctx, name, spacing, median, n_voxels_dataset)
  local r = ctx.rules
  local dim = #spacing
  for d = 1, dim do
    if not (spacing[d] > 0) then reject(ctx.spacing_rule, "spacing must be > 0, got %s for %s", fmt_list(spacing), name) end
  end
  local patch, topo, arch, estimate = call(ctx, "patch_size", spacing, median)
  check_vector("patch_size", name .. " patch size", patch, dim)
  for d = 1, dim do
    if math.type(patch[d]) ~= "integer" then
      local iv = math.tointeger(patch[d])
      if not iv then reject("patch_size", "%s patch size %s is not integral", name, fmt_list(patch)) end
      patch[d] = iv
    end
    if patch[d] < 1 then reject("patch_size", "%s patch size %s has an axis < 1", name, fmt_list(patch)) end
  end
  if arch == nil then
    topo = topo or call(ctx, "topology", spacing, patch)
    arch = call(ctx, "architecture", topo, dim)
  end
  -- zero or negative feature counts would give a network with empty convolutions
  local feats = arch.arch_kwargs and arch.arch_kwargs.features_per_stage
  if type(feats) == "table" then
    for s = 1, #feats do
      local iv = math.tointeger(feats[s])
      if not iv or iv < 1 then
        reject("features_per_stage", "%s features_per_stage %s: stage %d must have a positive integer count", name,
          fmt_list(feats), s)
      end
    end
  end
  -- patch must be divisible by 2^(number of stride-2 steps) per axis
  local strides = arch.arch_kwargs and arch.arch_kwargs.strides
  if type(strides) ~= "table" or #strides < 1 then reject("architecture", "%s has no strides", name) end
  for d = 1, dim do
    local div = 1
    for s = 1, #strides do div = div * strides[s][d] end
    if patch[d] % div ~= 0 then
      reject("patch_size", "%s patch size %s is not divisible by 2^pools = %d on axis %d (strides need %s)", name,
        fmt_list(patch), div, d - 1, "a multiple of " .. div)
    end
  end
  if estimate == nil then estimate = call(ctx, "estimate_vram", patch, arch) end
  local bs = call(ctx, "batch_size", estimate, patch, n_voxels_dataset, dim)
  if type(bs) ~= "number" or math.tointeger(bs) == nil or bs < 1 then
    reject("batch_size", "%s batch size must be an integer >= 1, got %s", name, tostring(bs))
  end
  bs = math.tointeger(bs)
  local schemes, mask = call(ctx, "normalization")
  local rs = call(ctx, "resampling")
  local cfg = {
    data_identifier = call(ctx, "data_identifier", name),
    preprocessor_name = ctx.preprocessor_name or r.preprocessor_name,
    batch_size = bs,
    patch_size = patch,
    median_image_size_in_voxels = median,
    spacing = tofloat(spacing),
    normalization_schemes = schemes,
    use_mask_for_norm = mask,
    architecture = arch,
  }
  for k, v in pairs(rs) do cfg[k] = v end
  return cfg
end

--- Plan an experiment. Returns a plain Lua table shaped like nnU-Net's plans.json.
function M.plan(fingerprint, opts)
  opts = opts or {}
  local rules, rules_label = M.load_rules(opts.rules, opts)
  -- the shipped presets are known to finish: only rule files and tables run under the time limit (the count hook
  -- costs about a third more Lua time per rule call)
  local rule_timeout = M.rule_timeout(opts.rule_timeout)
  if type(opts.rules) ~= "table" and M.presets[rules_label] and opts.rule_timeout == nil then rule_timeout = 0 end
  for _, k in ipairs({ "base_num_features", "max_features_2d", "max_features_3d" }) do
    local v = rules[k]
    if v ~= nil and not ((math.tointeger(v) or 0) >= 1) then
      reject(k, "%s must be a positive integer, got %s", k, tostring(v))
    end
  end
  local dj = opts.dataset_json
  if type(dj) == "string" then dj = json.read(dj) end
  if type(dj) ~= "table" then error("planner.plan: opts.dataset_json (table or path) is required", 2) end
  if type(fingerprint) == "string" then fingerprint = json.read(fingerprint) end
  local fp = fingerprint
  if type(fp) ~= "table" or type(fp.spacings) ~= "table" or #fp.spacings == 0 then
    error("planner.plan: fingerprint has no spacings", 2)
  end
  local chan = dj.channel_names or dj.modality
  if type(chan) ~= "table" then error("planner.plan: dataset.json has no channel_names", 2) end
  local channel_names = {}
  for _, k in ipairs(sorted_keys(chan)) do channel_names[#channel_names + 1] = chan[k] end
  local nlabels = 0
  for _ in pairs(dj.labels or {}) do nlabels = nlabels + 1 end
  local ctx = {
    rules = rules,
    fingerprint = fp,
    dataset_json = dj,
    channel_names = channel_names,
    num_input_channels = #channel_names,
    num_classes = nlabels,
    num_training = dj.numTraining or #fp.spacings,
    gpu_memory_gb = opts.gpu_memory_gb or rules.gpu_memory_gb,
    plans_name = opts.plans_name or rules.plans_name,
    preprocessor_name = opts.preprocessor_name,
    rule_timeout = rule_timeout,
    null = json.null,
    spacing_rule = "target_spacing",
  }
  local H = rules.helpers

  -- nnU-Net's overwrite_target_spacing replaces determine_fullres_target_spacing as a whole, whatever the rules say
  local dim3 = #fp.spacings[1]
  local fullres
  if opts.overwrite_target_spacing ~= nil then
    check_vector("overwrite_target_spacing", "overwrite_target_spacing", opts.overwrite_target_spacing, dim3)
    fullres = tofloat(opts.overwrite_target_spacing)
  else
    fullres = call(ctx, "target_spacing")
  end
  check_vector("target_spacing", "target spacing", fullres, dim3)
  for d = 1, dim3 do
    if not (fullres[d] > 0) then reject("target_spacing", "spacing must be > 0, got %s", fmt_list(fullres)) end
  end
  local fwd, bwd = call(ctx, "transpose", fullres)
  local fs_t = permute(fullres, fwd)

  local new_shapes = {}
  for i, shape in ipairs(fp.shapes_after_crop) do
    new_shapes[i] = call(ctx, "resampled_shape", shape, fp.spacings[i], fullres)
  end
  local nm = H.columns(new_shapes, H.median)
  local nm_t = permute(nm, fwd)
  local n_vox = H.prod(nm_t) * ctx.num_training

  local configs, order = {}, {}
  local full, low
  if nm_t[1] ~= 1 then
    full = plan_configuration(ctx, "3d_fullres", fs_t, nm_t, n_vox)
    local patch_vox = H.prod(full.patch_size)
    local median_vox = H.prod(nm_t)
    local low_sp = H.copy(fs_t)
    local iter = 0
    ctx.spacing_rule = "lowres_spacing_step"
    while call(ctx, "needs_lowres", patch_vox, median_vox) do
      iter = iter + 1
      if iter > 10000 then reject("needs_lowres", "3d_lowres search did not terminate after 10000 steps") end
      low_sp = call(ctx, "lowres_spacing_step", low_sp)
      local shp = {}
      for d = 1, #low_sp do shp[d] = fs_t[d] / low_sp[d] * nm_t[d] end
      median_vox = H.prod(shp)
      local med = {}
      for d = 1, #shp do med[d] = H.round(shp[d]) end
      low = plan_configuration(ctx, "3d_lowres", low_sp, med, median_vox * ctx.num_training)
      patch_vox = H.prod(low.patch_size)
    end
    ctx.spacing_rule = "target_spacing"
    if low and H.prod(nm_t) / median_vox < rules.lowres_min_voxel_ratio then low = nil end
  end
  local sp2, med2 = {}, {}
  for d = 2, #fs_t do sp2[#sp2 + 1] = fs_t[d]; med2[#med2 + 1] = nm_t[d] end
  local c2d = plan_configuration(ctx, "2d", sp2, med2, n_vox)
  c2d.batch_dice = call(ctx, "batch_dice", "2d", low ~= nil)
  configs["2d"] = order_config(c2d); order[#order + 1] = "2d"
  if low then
    low.batch_dice = call(ctx, "batch_dice", "3d_lowres", true)
    if full then low.next_stage = "3d_cascade_fullres" end
    configs["3d_lowres"] = order_config(low); order[#order + 1] = "3d_lowres"
  end
  if full then
    full.batch_dice = call(ctx, "batch_dice", "3d_fullres", low ~= nil)
    configs["3d_fullres"] = order_config(full); order[#order + 1] = "3d_fullres"
    if low then
      configs["3d_cascade_fullres"] = object({ inherits_from = "3d_fullres", previous_stage = "3d_lowres" },
        { "inherits_from", "previous_stage" })
      order[#order + 1] = "3d_cascade_fullres"
    end
  end

  local med_sp = permute(H.columns(fp.spacings, H.median), fwd)
  local med_shape = permute(H.columns(fp.shapes_after_crop, H.median), fwd)
  for d = 1, #med_shape do med_shape[d] = H.round(med_shape[d]) end

  local plans = {
    dataset_name = opts.dataset_name or dj.name or "Dataset000_unnamed",
    plans_name = ctx.plans_name,
    original_median_spacing_after_transp = array(tofloat(med_sp)),
    original_median_shape_after_transp = array(med_shape),
    image_reader_writer = opts.image_reader_writer or M.image_reader_writer(dj),
    transpose_forward = array(fwd),
    transpose_backward = array(bwd),
    configurations = json.object(configs, order),
    experiment_planner_used = rules.experiment_planner_used,
    label_manager = "LabelManager",
    foreground_intensity_properties_per_channel = fp.foreground_intensity_properties_per_channel or json.object({}),
  }
  return object(plans, ORDER.plans)
end

--- Keep configurations of an existing plans file that this run did not produce (nnU-Net's save_plans).
function M.merge_existing(plans, old)
  local keys = json.keys(plans.configurations)
  for _, k in ipairs(json.keys(old.configurations or {})) do
    if plans.configurations[k] == nil then
      plans.configurations[k] = old.configurations[k]
      keys[#keys + 1] = k
    end
  end
  json.object(plans.configurations, keys)
  return plans
end

function M.write(plans, path)
  json.write(path, plans, { sort_keys = false })
end

function M.read(path)
  local p = json.read(path)
  if type(p) ~= "table" or type(p.configurations) ~= "table" then
    error(path .. ": not a plans file (no 'configurations')", 2)
  end
  return p
end

--- A configuration with inherits_from resolved (child keys override the parent's).
function M.configuration(plans, name)
  local seen = {}
  local function resolve(n)
    if seen[n] then error("plans: inherits_from cycle at configuration '" .. n .. "'", 0) end
    seen[n] = true
    local c = plans.configurations[n]
    if c == nil then error("plans: no configuration '" .. n .. "'", 0) end
    local out = {}
    if c.inherits_from then
      for k, v in pairs(resolve(c.inherits_from)) do out[k] = v end
    end
    for k, v in pairs(c) do if k ~= "inherits_from" then out[k] = v end end
    return out
  end
  return resolve(name)
end

return setmetatable(M, { __call = function(_, ...) return M.plan(...) end })
