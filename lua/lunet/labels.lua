--[[ lunet.labels: the semantics of dataset.json's "labels" (and "regions_class_order"), as nnU-Net's
LabelManager gives them (nnunetv2/utilities/label_handling/label_handling.py: LabelManager).

  local labels = require "lunet.labels"
  local info = labels.info(dj.labels, dj.regions_class_order)   -- or labels.of_dataset_json(dj)
  info.names                  -- label names in the file's order
  info.values                 -- name -> int, or {ints} for a region
  info.all_labels             -- sorted unique ints of every entry but "ignore" (regions flattened), 0 included
  info.foreground_labels      -- all_labels without 0
  info.has_regions            -- some entry is a list of more than one int (region-based training)
  info.regions, info.foreground_regions   -- the non-background entries in file order (region-based only)
  info.regions_class_order    -- the order regions are painted back into a label map (region-based only)
  info.ignore_label           -- "ignore"'s value; it must be max(all_labels) + 1
  info.num_segmentation_heads -- #regions (sigmoid outputs) or #all_labels (softmax outputs)
]]
local json = require "lunet.util.json"

local M = {}

local function is_list(v) return type(v) == "table" and json.is_array(v) end

local function int_of(v, what)
  local i = math.tointeger(v)
  if i == nil and type(v) == "number" and v == math.floor(v) then i = math.tointeger(math.floor(v)) end
  if i == nil then error(what .. " must be an integer, got " .. tostring(v), 0) end
  return i
end

--- Label semantics from dataset.json's labels dict (and regions_class_order). Errors are plain strings
--- (level 0): the caller prefixes the file, as dataset.open and verify do.
function M.info(labels, regions_class_order)
  if type(labels) ~= "table" or is_list(labels) then error("'labels' must be an object of name -> value", 0) end
  local names = json.keys(labels)
  local bg = labels.background
  if bg == nil then error("background label not declared (it must be 0)", 0) end
  if is_list(bg) then error("background label must be 0, not a list", 0) end
  if int_of(bg, "background label") ~= 0 then error("background label must be 0, got " .. tostring(bg), 0) end
  local info = { names = names, values = {}, has_regions = false }
  local seen, all = {}, {}
  for _, name in ipairs(names) do
    local v = labels[name]
    if is_list(v) then
      local ints = {}
      for i, x in ipairs(v) do ints[i] = int_of(x, "label '" .. name .. "'") end
      info.values[name] = ints
      if #ints > 1 then info.has_regions = true end
      if name ~= "ignore" then
        for _, x in ipairs(ints) do if not seen[x] then seen[x] = true; all[#all + 1] = x end end
      end
    else
      local x = int_of(v, "label '" .. name .. "'")
      info.values[name] = x
      if name ~= "ignore" and not seen[x] then seen[x] = true; all[#all + 1] = x end
    end
  end
  table.sort(all)
  info.all_labels = all
  if labels.ignore ~= nil then
    if is_list(labels.ignore) or math.type(labels.ignore) ~= "integer" then
      error("ignore label has to be an integer, not " .. json.encode(labels.ignore), 0)
    end
    info.ignore_label = labels.ignore
    if info.ignore_label ~= all[#all] + 1 then
      error(string.format("the ignore label (%d) must be the highest label value, max(labels) + 1 = %d",
        info.ignore_label, all[#all] + 1), 0)
    end
  end
  info.foreground_labels = {}
  for _, x in ipairs(all) do if x ~= 0 then info.foreground_labels[#info.foreground_labels + 1] = x end end
  if info.has_regions then
    if regions_class_order == nil or regions_class_order == json.null then
      error("region-based labels need 'regions_class_order' in dataset.json", 0)
    end
    local regions = {}
    for _, name in ipairs(names) do
      if name ~= "ignore" then
        local v = info.values[name]
        local all_zero = true
        if type(v) == "table" then
          for _, x in ipairs(v) do if x ~= 0 then all_zero = false end end
        else
          all_zero = v == 0
        end
        if not all_zero then regions[#regions + 1] = v end
      end
    end
    if #regions_class_order ~= #regions then
      error(string.format("regions_class_order has %d entries but there are %d regions",
        #regions_class_order, #regions), 0)
    end
    info.regions = regions
    info.foreground_regions = regions
    info.regions_class_order = {}
    for i, x in ipairs(regions_class_order) do info.regions_class_order[i] = int_of(x, "regions_class_order entry") end
    info.num_segmentation_heads = #regions
  else
    info.num_segmentation_heads = #all
  end
  return info
end

--- labels.info of a decoded dataset.json.
function M.of_dataset_json(dj)
  return M.info(dj.labels, dj.regions_class_order)
end

return M
