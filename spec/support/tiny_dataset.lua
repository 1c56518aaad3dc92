-- A tiny 2-D raw dataset in nnU-Net's layout (16x16 NIfTI slices: a bright disk labelled 1 and a dark square
-- labelled 2 on deterministic noise), small enough that nnU-Net's default 2d plan trains on a CPU in seconds.
local image = require "lunet.io.image"
local json = require "lunet.util.json"
local lunet = require "lunet"

local M = {}

function M.make(raw_root, opts)
  opts = opts or {}
  local name = opts.name or "Dataset501_TinyShapes"
  local ntr, nts, n = opts.train or 10, opts.test or 2, opts.size or 16
  local root = raw_root .. "/" .. name
  for _, d in ipairs({ "imagesTr", "labelsTr", "imagesTs", "labelsTs" }) do
    assert(os.execute("mkdir -p '" .. root .. "/" .. d .. "'"))
  end
  local like = { sitk = { spacing = { 1.0, 1.0, 999.0 }, origin = { 0.0, 0.0, 0.0 },
                          direction = { 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0 } } }
  local seed = 12345
  local function rnd() seed = (seed * 1103515245 + 12345) % 2147483648; return seed / 2147483648 end
  for k = 1, ntr + nts do
    local f = n / 32 -- shapes laid out on a 32-pixel grid, scaled to n
    local cy, cx, r = f * (8 + (k * 5) % 10), f * (9 + (k * 7) % 10), f * (4 + k % 3)
    local sy, sx, s = f * (18 + (k * 3) % 7), f * (17 + (k * 11) % 8), f * (5 + k % 2)
    local img, seg = {}, {}
    for y = 0, n - 1 do
      for x = 0, n - 1 do
        local v, l = rnd() * 0.5, 0
        if (y - cy) ^ 2 + (x - cx) ^ 2 <= r * r then v, l = v + 2, 1
        elseif y >= sy and y < sy + s and x >= sx and x < sx + s then v, l = v - 1.5, 2 end
        img[#img + 1], seg[#seg + 1] = v, l
      end
    end
    local split = k <= ntr and "Tr" or "Ts"
    local id = string.format("tiny_%03d", k)
    image.write(string.format("%s/images%s/%s_0000.nii.gz", root, split, id),
      lunet.tensor(img, { shape = { 1, 1, n, n }, dtype = "f32" }), like)
    image.write(string.format("%s/labels%s/%s.nii.gz", root, split, id),
      lunet.tensor(seg, { shape = { 1, 1, n, n }, dtype = "u8" }), like)
  end
  json.write(root .. "/dataset.json", {
    channel_names = { ["0"] = "MR" }, labels = { background = 0, disk = 1, square = 2 },
    numTraining = ntr, file_ending = ".nii.gz", name = "TinyShapes",
  })
  return root
end

return M
