--[[ lunet.io.store: preprocessed cases in the chunked zstd case store (docs/formats.md, "Case store").

  local store = require "lunet.io.store"
  local c = store.open("nnUNet_preprocessed/Dataset004_X/nnUNetPlans_3d_fullres/case_001.lcs")
  c.shape, c.channels, c.seg_channels, c.chunk, c.seg_dtype    -- spatial shape {Z,Y,X} etc.
  c.properties                                                 -- the <case>.json next to it (nil if absent)
  c.class_locations, c.class_keys, c.annotated                 -- from the properties, in class order: list of
                                                               -- i32 (N, 4) tensors, their keys ("1", "(1, 2)"),
                                                               -- index of the ignore label's "(-1, ...)" key or nil
                                                               -- (the shape lunet.sampler takes for store cases)
  local data, seg = c:read_patch({z0, y0, x0}, {z1, y1, x1})   -- [lo, hi) per axis, may cross the border:
                                                               -- data padded with 0, seg with -1 (nnU-Net loader)
  local data, seg = store.read_patch(c_or_path, {{z0,z1},{y0,y1},{x0,x1}})
  store.write(path, data, seg, {chunk={64,64,64}, level=1, threads=2})   -- atomic
  store.valid(path)                                            -- complete, consistent file?
  c:close()
]]
local core = require "lunet.core"
local json = require "lunet.util.json"

local M = {}

local Case = {}
Case.__index = Case

function Case:read_patch(lo, hi)
  if hi == nil and type(lo) == "table" and type(lo[1]) == "table" then
    local l, h = {}, {}
    for a = 1, 3 do l[a], h[a] = lo[a][1], lo[a][2] end
    lo, hi = l, h
  end
  return self._h:read_patch(lo, hi)
end

function Case:close() if self._h then self._h:close() end end

-- class_locations of the properties, in file (class) order: list of (N, 4) i32 tensors, keys, annotated index
local function locations_list(cl)
  local list, keys, annotated = {}, {}, nil
  if type(cl) ~= "table" then return list, keys end
  for i, k in ipairs(json.keys(cl)) do
    local rows = cl[k]
    local flat = {}
    for r, v in ipairs(rows) do
      for q = 1, 4 do flat[(r - 1) * 4 + q] = v[q] end
    end
    list[i] = core.tensor(#flat > 0 and flat or {}, { shape = { #rows, 4 }, dtype = "i32" })
    keys[i] = k
    if k:match("^%(%-1,") then annotated = i end
  end
  return list, keys, annotated
end

function M.open(path, opts)
  if type(path) ~= "string" then error("store.open: expected a path", 2) end
  local ok, h = pcall(core.store.open, path)
  if not ok then error(tostring(h), 2) end
  local info = h:info()
  local c = setmetatable({ path = path, _h = h, shape = info.shape, chunk = info.chunk, channels = info.channels,
    seg_channels = info.seg_channels, seg_dtype = info.seg_dtype }, Case)
  local jp = path:gsub("%.lcs$", "") .. ".json"
  local f = io.open(jp, "rb")
  if f then
    local s = f:read("a")
    f:close()
    local okj, props = pcall(json.decode, s, jp)
    if okj then
      c.properties = props
      if not (opts and opts.no_locations) then
        c.class_locations, c.class_keys, c.annotated = locations_list(props.class_locations)
      end
    end
  end
  return c
end

function M.read_patch(c, box)
  local own = type(c) == "string"
  if own then c = M.open(c, { no_locations = true }) end
  local d, s = c:read_patch(box)
  if own then c:close() end
  return d, s
end

function M.write(path, data, seg, opts)
  opts = opts or {}
  local ok, err = pcall(core.store.write, path, data, seg, opts.chunk, opts.level or 1, opts.threads or 1)
  if not ok then error(tostring(err), 2) end
end

function M.valid(path) return core.store.valid(path) end

return M
