-- lunet plot-overlay-pngs: nnUNetv2_plot_overlay_pngs.
local args = require "lunet.cli.args"

local M = args.command({ summary = "PNG overlays of images and segmentations, one per case (plot_overlay_pngs)" })

function M.parser()
  local p = args.parser("plot-overlay-pngs", [[
Writes OUT/<case>.png for every training case: the slice with the most foreground (nnU-Net's choice), image in
grey, segmentation overlaid in colours, as nnUNetv2_plot_overlay_pngs. Spacing is ignored.]])
  p:option("-d", "dataset id or name"):argname("DATASET"):count(1)
  p:option("-o", "output folder"):argname("OUT"):count(1)
  p:flag("--use_raw", "plot nnUNet_raw's imagesTr/labelsTr; default: the preprocessed cases")
  p:option("-channel_idx", "image channel (0 = _0000; default 0)"):argname("N"):convert(args.int("-channel_idx", 0))
  p:option("-p", "preprocessed data of these plans (default nnUNetPlans); not used with --use_raw"):argname("PLANS")
  p:option("-c", "preprocessed data of this configuration (3d_fullres if planned, else 2d); not used with --use_raw")
    :argname("CONFIG")
  p:option("-overlay_intensity", "weight of the colours (default 0.6; higher = brighter, less transparent)")
    :argname("F"):convert(args.number("-overlay_intensity"))
  p:option("-np", "accepted for nnU-Net's command lines (cases are drawn one after another)"):argname("N")
    :convert(args.int("-np", 1))
  return p
end

function M.run(argv)
  local r, code = args.parse_or_status(M.parser(), "plot-overlay-pngs", argv)
  if not r then return code end
  local o = { channel = r.channel_idx, plans = r.p, configuration = r.c, intensity = r.overlay_intensity }
  local overlay = require "lunet.overlay"
  local files = (r.use_raw and overlay.from_raw or overlay.from_preprocessed)(r.d, r.o, o)
  io.write(string.format("wrote %d overlays into %s\n", #files, r.o))
  return 0
end

return M
