-- lunet.io.pickles: the two pickle files nnU-Net's own commands read from a prediction folder, written next to
-- the JSON Lunet writes, and read where Lunet finds only them.
--
--   pickles.write_properties(path, props)   <case>.pkl of `predict --save-probabilities` (nnUNetv2_ensemble reads
--                                           the geometry from it): sitk_stuff, spacing, shape_before_cropping,
--                                           bbox_used_for_cropping, shape_after_cropping_and_before_resampling
--   pickles.read_properties(path)           -> the same table, JSON-shaped (lists as arrays)
--   pickles.write_postprocessing(path, steps)  postprocessing.pkl: (list of functions, list of kwargs dicts), the
--                                           functions named as nnunetv2's, so nnUNetv2_apply_postprocessing runs them
--   pickles.read_postprocessing(path)       -> steps {fn=, kwargs=} (the functions by name, nothing is executed)
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

local PP_MODULE = "nnunetv2.postprocessing.remove_connected_components"
local PP_FUNCTIONS = { remove_all_but_largest_component_from_segmentation = true }

local function P() return core.pickle end

-- numbers as Python has them in nnU-Net's properties: integral shape entries as int, geometry as float
local function ints(t)
  local o = {}
  for i, v in ipairs(t) do o[i] = math.tointeger(v) or v end
  return o
end
local function floats(t)
  local o = {}
  for i, v in ipairs(t) do o[i] = v + 0.0 end
  return o
end

--- The pickle value nnU-Net's predictor writes for a case's properties.
function M.properties_value(p)
  local py = P()
  local d = py.dict()
  if p.sitk_stuff then
    local s = py.dict()
    -- SimpleITK returns tuples; keep nnU-Net's key order
    for _, k in ipairs { "spacing", "origin", "direction" } do
      if p.sitk_stuff[k] then py.set(s, k, py.tuple(floats(p.sitk_stuff[k]))) end
    end
    py.set(d, "sitk_stuff", s)
  end
  if p.spacing then py.set(d, "spacing", py.list(floats(p.spacing))) end
  if p.shape_before_cropping then py.set(d, "shape_before_cropping", py.tuple(ints(p.shape_before_cropping))) end
  if p.bbox_used_for_cropping then
    local bb = {}
    for i, b in ipairs(p.bbox_used_for_cropping) do bb[i] = py.list(ints(b)) end
    py.set(d, "bbox_used_for_cropping", py.list(bb))
  end
  if p.shape_after_cropping_and_before_resampling then
    py.set(d, "shape_after_cropping_and_before_resampling",
      py.tuple(ints(p.shape_after_cropping_and_before_resampling)))
  end
  return d
end

function M.write_properties(path, props)
  P().save_file(path, M.properties_value(props), 4)
end

-- pickle values -> JSON-shaped Lua values (lists/tuples/arrays -> json arrays, dicts -> objects in file order)
local function plain(v)
  local py = P()
  if v == py.None then return json.null end
  if type(v) ~= "table" then return v end
  local mt = getmetatable(v)
  if mt == py.List or mt == py.Tuple then
    local a = json.array {}
    for i = 1, v.n or #v do a[i] = plain(v[i]) end
    return a
  end
  if mt == py.Dict then
    local o, keys = {}, {}
    for _, k in ipairs(py.keys(v)) do
      keys[#keys + 1] = tostring(k)
      o[tostring(k)] = plain(v[k])
    end
    return json.object(o, keys)
  end
  if mt == py.Array then
    -- numpy arrays (nibabel_stuff's affines): nested arrays of their values, C order
    local fmt = ({ float64 = "<d", float32 = "<f", int64 = "<i8", int32 = "<i4", uint8 = "B", int16 = "<i2" })[v.dtype]
    if not fmt then error("pickle: numpy array of dtype " .. tostring(v.dtype) .. " in properties", 0) end
    local flat, pos = {}, 1
    while pos <= #v.data do flat[#flat + 1], pos = string.unpack(fmt, v.data, pos) end
    if #v.shape <= 1 then return json.array(flat) end
    local out, cols = json.array {}, v.shape[#v.shape]
    for r = 0, #flat // cols - 1 do
      local row = json.array {}
      for c = 1, cols do row[c] = flat[r * cols + c] end
      out[r + 1] = row
    end
    return out
  end
  return v
end
M.plain = plain

function M.read_properties(path)
  local v = P().load_file(path)
  if getmetatable(v) ~= P().Dict then error(path .. ": not a properties pickle (not a dict)", 2) end
  return plain(v)
end

--- steps: {fn = name, kwargs = {labels_or_regions = ...}} as lunet.postprocess makes them.
function M.write_postprocessing(path, steps)
  local py = P()
  local fns, kws = {}, {}
  for i, s in ipairs(steps) do
    if not PP_FUNCTIONS[s.fn] then error(("postprocessing.pkl: no nnunetv2 function for step %d (%s)"):format(
      i, tostring(s.fn)), 2) end
    fns[i] = py.global(PP_MODULE, s.fn)
    local kw = py.dict()
    for _, k in ipairs(json.keys(s.kwargs or {})) do
      local v = s.kwargs[k]
      if type(v) == "table" then
        local l = {}
        for j, x in ipairs(v) do
          if type(x) == "table" then l[j] = py.tuple(ints(x)) else l[j] = math.tointeger(x) or x end
        end
        v = py.list(l)
      elseif type(v) == "number" then
        v = math.tointeger(v) or v
      end
      py.set(kw, k, v)
    end
    kws[i] = kw
  end
  py.save_file(path, py.tuple { py.list(fns), py.list(kws) }, 4)
end

function M.read_postprocessing(path)
  local py = P()
  local allowed = {}
  for name in pairs(PP_FUNCTIONS) do allowed[#allowed + 1] = PP_MODULE .. "." .. name end
  local v = py.load_file(path, { symbolic_globals = allowed })
  local mt = getmetatable(v)
  if (mt ~= py.Tuple and mt ~= py.List) or (v.n or #v) ~= 2 then
    error(path .. ": not nnU-Net's postprocessing.pkl (expected a pair of lists: functions, kwargs)", 2)
  end
  local fns, kws = v[1], v[2]
  local steps = {}
  for i = 1, fns.n or #fns do
    local g = fns[i]
    if getmetatable(g) ~= py.Global then error(("%s: postprocessing function %d is not a function name"):format(path, i), 2) end
    steps[i] = { fn = g.name, kwargs = plain(kws[i] or py.dict()) }
  end
  return steps
end

return M
