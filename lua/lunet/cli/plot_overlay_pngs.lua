-- lunet plot-overlay-pngs: nnUNetv2_plot_overlay_pngs.
local USAGE = [[
usage: lunet plot-overlay-pngs -d DATASET -o OUT [--use_raw] [-channel_idx N] [-p PLANS] [-c CONFIG]
                               [-overlay_intensity F] [-np N]

Writes OUT/<case>.png for every training case: the slice with the most foreground (nnU-Net's choice), image in
grey, segmentation overlaid in colours, as nnUNetv2_plot_overlay_pngs. Spacing is ignored.
  --use_raw            plot nnUNet_raw's imagesTr/labelsTr; default: the preprocessed cases
  -channel_idx N       image channel (0 = _0000; default 0)
  -p PLANS / -c CFG    preprocessed data of these plans (nnUNetPlans) and configuration (3d_fullres if planned,
                       else 2d); not used with --use_raw
  -overlay_intensity F weight of the colours (default 0.6; higher = brighter, less transparent)
  -np N                accepted for nnU-Net compatibility (cases are drawn one after another)
]]

local function run(args)
  local o, ds, out, raw = {}, nil, nil, false
  local i = 1
  local function val(a)
    i = i + 1
    if args[i] == nil then error(a .. " needs a value", 0) end
    return args[i]
  end
  while i <= #args do
    local a = args[i]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-d" then ds = val(a)
    elseif a == "-o" then out = val(a)
    elseif a == "--use_raw" or a == "--use-raw" then raw = true
    elseif a == "-channel_idx" then o.channel = math.tointeger(tonumber(val(a))) or error("-channel_idx needs an integer", 0)
    elseif a == "-p" then o.plans = val(a)
    elseif a == "-c" then o.configuration = val(a)
    elseif a == "-overlay_intensity" then o.intensity = tonumber(val(a)) or error("-overlay_intensity needs a number", 0)
    elseif a == "-np" then val(a)
    else io.stderr:write("lunet plot-overlay-pngs: unexpected argument " .. a .. "\n" .. USAGE) return 2 end
    i = i + 1
  end
  if not ds or not out then io.stderr:write(USAGE) return 2 end
  local overlay = require "lunet.overlay"
  local files = (raw and overlay.from_raw or overlay.from_preprocessed)(ds, out, o)
  io.write(string.format("wrote %d overlays into %s\n", #files, out))
  return 0
end

return { summary = "PNG overlays of images and segmentations, one per case (plot_overlay_pngs)", usage = USAGE,
         run = run }
