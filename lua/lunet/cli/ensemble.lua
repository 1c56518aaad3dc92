-- lunet ensemble: nnUNetv2_ensemble.
local args = require "lunet.cli.args"

local M = args.command({ summary = "average npz probabilities of several prediction folders (nnUNetv2_ensemble)" })

function M.parser()
  local p = args.parser("ensemble", [[
Averages the probabilities (<case>.npz, key "probabilities") of the same cases in every input folder,
converts them to segmentations (argmax, or regions_class_order for region-based datasets) and writes
OUT/<case><file_ending> with the geometry of the first folder's <case>.json properties or <case>
segmentation.]])
  p:option("-i", "prediction folders to average (each made with --save_probabilities)"):args("+")
    :argname("DIR"):count(1)
  p:option("-o", "output folder"):argname("OUT"):count(1)
  p:option("-np", "threads (default 2)"):argname("N"):convert(args.int("-np", 1))
  p:flag("--save_npz", "also write the averaged probabilities (<case>.npz and .json)")
  p:option("-dataset_json", "dataset.json (default: the first folder's)"):argname("FILE")
  p:option("-plans_json", "plans.json (default: the first folder's)"):argname("FILE")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "ensemble", argv)
  if not o then return code end
  local cases = require("lunet.ensemble").folders(o.i, o.o, { threads = o.np, save_npz = o.save_npz,
    dataset_json = o.dataset_json, plans_json = o.plans_json })
  io.write(string.format("ensembled %d case(s) from %d folder(s) into %s\n", #cases, #o.i, o.o))
  return 0
end

return M
