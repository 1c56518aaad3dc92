-- The synthetic "bright disc" dataset the trainer and lock specs train and predict on: grey PNG cases
-- of a bright noisy disc (label 1) on a darker noisy background, written in nnU-Net's raw layout.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"

local M = {}

-- Writes raw/<ds>/{imagesTr,labelsTr,dataset.json} (and imagesTs with case 0 when opts.test_case).
-- opts: cases, size, seed, centre = {lowest, span}, radius = {smallest, span}, test_case.
function M.write(raw, ds, opts)
  local dir = raw .. "/" .. ds
  os.execute("mkdir -p " .. dir .. "/imagesTr " .. dir .. "/labelsTr" .. (opts.test_case and (" " .. dir .. "/imagesTs") or ""))
  local rng = core.rng.new(opts.seed, 0)
  local S = opts.size
  for i = 0, opts.cases - 1 do
    local cy = opts.centre[1] + rng:int(0, opts.centre[2])
    local cx = opts.centre[1] + rng:int(0, opts.centre[2])
    local r = opts.radius[1] + rng:int(0, opts.radius[2])
    local img, seg = {}, {}
    for y = 0, S - 1 do
      for x = 0, S - 1 do
        local inside = (y - cy) ^ 2 + (x - cx) ^ 2 <= r * r
        img[#img + 1] = (inside and 170 or 70) + rng:int(0, 50)
        seg[#seg + 1] = inside and 1 or 0
      end
    end
    local id = string.format("disc_%03d", i)
    local it = lunet.tensor(img, { shape = { 1, 1, S, S }, dtype = "u8" })
    lunet.io.image.write(dir .. "/imagesTr/" .. id .. "_0000.png", it)
    if i == 0 and opts.test_case then lunet.io.image.write(dir .. "/imagesTs/" .. id .. "_0000.png", it) end
    lunet.io.image.write(dir .. "/labelsTr/" .. id .. ".png", lunet.tensor(seg, { shape = { 1, 1, S, S }, dtype = "u8" }))
  end
  json.write(dir .. "/dataset.json", { channel_names = { ["0"] = "grey" },
    labels = { background = 0, disc = 1 }, numTraining = opts.cases, file_ending = ".png" })
end

-- The environment a `lunet` child process needs: nnU-Net's three roots and this checkout's modules.
function M.env_prefix(raw, pre, res, root)
  return ("nnUNet_raw=%s nnUNet_preprocessed=%s nnUNet_results=%s LUA_PATH='%s/lua/?.lua;%s/lua/?/init.lua;;' " ..
    "LUA_CPATH='%s/build/?.so;;' "):format(raw, pre, res, root, root, root)
end

return M
