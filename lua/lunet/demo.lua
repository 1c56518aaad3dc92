--[[ lunet.demo: the bundled default dataset, built on first use from Debian's mricron-data package.

  demo.make_dataset(raw_root [, opts]) -> dataset folder path
    Reads the Colin27 T1 template (/usr/share/mricron/templates/ch2.nii.gz) and its brain-extracted
    twin (ch2bet.nii.gz, same grid); the label is ch2bet > 0 (the brain mask). Every `opts.step`-th
    axial slice that holds brain becomes one 2-D case, averaged 2x2 in-plane to 2 mm (a CPU trains
    on it in minutes); every `opts.test_every`-th case goes to imagesTs/labelsTs as held-out data.
    Written in nnU-Net's raw layout as Dataset<id>_ColinBrainMask, so users see what their own
    data must look like. Existing complete datasets are left as they are.
]]
local image = require "lunet.io.image"
local json = require "lunet.util.json"

local M = {}

-- LUNET_DEMO_TEMPLATES names another folder holding ch2.nii.gz and ch2bet.nii.gz (a machine without the
-- package: the GPU machines get the two files carried by scripts/device-pack.sh)
M.templates = os.getenv("LUNET_DEMO_TEMPLATES") or "/usr/share/mricron/templates"
M.dataset_name = "Dataset100_ColinBrainMask"

local function exists(path)
  local f = io.open(path)
  if f then f:close() end
  return f ~= nil
end

local function mkdir(path) assert(os.execute("mkdir -p '" .. path .. "'")) end

function M.make_dataset(raw_root, opts)
  opts = opts or {}
  local step, test_every = opts.step or 2, opts.test_every or 5
  local root = raw_root .. "/" .. M.dataset_name
  if exists(root .. "/dataset.json") then return root end
  local t1_path, bet_path = M.templates .. "/ch2.nii.gz", M.templates .. "/ch2bet.nii.gz"
  if not exists(t1_path) or not exists(bet_path) then
    error("demo: " .. t1_path .. " is missing: install Debian's mricron-data package (make deps does)", 2)
  end
  local t1, bet = image.read(t1_path), image.read(bet_path)
  local shape = t1.data.shape -- (1, Z, Y, X)
  local Z, Y, X = shape[2], shape[3], shape[4]
  local a, b = t1.data:flat(), bet.data:flat()
  local Y2, X2 = Y // 2, X // 2
  local tmp = root .. ".partial"
  os.execute("rm -rf '" .. tmp .. "'")
  for _, d in ipairs({"imagesTr", "labelsTr", "imagesTs", "labelsTs"}) do mkdir(tmp .. "/" .. d) end
  -- 2-D NIfTI cases: one slice, 2 mm in-plane, and a through-plane spacing of 999 as nnU-Net gives
  -- 2-D images, so planning never treats the single slice as the finest axis.
  local like = {sitk = {spacing = {2.0, 2.0, 999.0}, origin = {0.0, 0.0, 0.0},
                        direction = {1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0}}}
  local ntr, nts, kept = 0, 0, 0
  for z = 0, Z - 1 do
    local brain = 0
    local base = z * Y * X
    for i = base + 1, base + Y * X do if b[i] > 0 then brain = brain + 1 end end
    if brain > 400 then
      kept = kept + 1
      if (kept - 1) % step == 0 then
        local img, seg = {}, {}
        for y = 0, Y2 - 1 do
          for x = 0, X2 - 1 do
            local s, m = 0, 0
            for dy = 0, 1 do
              for dx = 0, 1 do
                local i = base + (2 * y + dy) * X + (2 * x + dx) + 1
                s = s + a[i]
                if b[i] > 0 then m = m + 1 end
              end
            end
            img[#img + 1] = s / 4
            seg[#seg + 1] = m >= 2 and 1 or 0
          end
        end
        local id = string.format("colin_z%03d", z)
        local n = ntr + nts
        local split = (n % test_every == test_every - 1) and "Ts" or "Tr"
        if split == "Ts" then nts = nts + 1 else ntr = ntr + 1 end
        image.write(string.format("%s/images%s/%s_0000.nii.gz", tmp, split, id),
          require("lunet").tensor(img, {shape = {1, 1, Y2, X2}, dtype = "f32"}), like)
        image.write(string.format("%s/labels%s/%s.nii.gz", tmp, split, id),
          require("lunet").tensor(seg, {shape = {1, 1, Y2, X2}, dtype = "u8"}), like)
      end
    end
  end
  json.write(tmp .. "/dataset.json", {
    channel_names = {["0"] = "T1"},
    labels = {background = 0, brain = 1},
    numTraining = ntr,
    file_ending = ".nii.gz",
    name = "ColinBrainMask",
    description = "Axial slices of the Colin27 T1 template (mricron-data), 2 mm in-plane; label: brain mask from ch2bet",
    reference = "Holmes et al. 1998, Colin27 average; Debian package mricron-data",
    licence = "see /usr/share/doc/mricron-data/copyright",
  })
  os.execute("rm -rf '" .. root .. "'")
  assert(os.rename(tmp, root))
  return root
end

return M
