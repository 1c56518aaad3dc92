-- lunet postprocess: nnUNetv2_apply_postprocessing (and nnUNetv2_determine_postprocessing with -ref).
local args = require "lunet.cli.args"

local M = args.command({
  summary = "apply (or determine with -ref) nnU-Net's connected-component postprocessing" })

function M.parser()
  local p = args.parser("postprocess", [[
Apply (-o and -pp_pkl_file): runs the steps of a postprocessing description (postprocessing.pkl or
postprocessing.json, nnU-Net's or Lunet's) on every segmentation of IN, writing OUT.
Determine (-ref): nnU-Net's determine_postprocessing: tries keeping the largest connected component of
the foreground, then of each label/region, keeps what improves Dice; writes IN/postprocessing.pkl
and .json and IN/postprocessed/. plans/dataset json default to the input folder's.]])
  p:option("-i", "folder of segmentations (the predictions, with -ref)"):argname("IN"):count(1)
  p:option("-o", "output folder (apply)"):argname("OUT")
  p:option("-pp_pkl_file", "postprocessing.pkl or .json to apply (also --pp)"):hidden_name("--pp"):argname("FILE")
  p:option("-ref", "reference segmentations: determine the postprocessing instead of applying one")
    :argname("GT_DIR")
  p:option("-plans_json", "plans.json (default: IN's)"):argname("FILE")
  p:option("-dataset_json", "dataset.json (default: IN's)"):argname("FILE")
  p:option("-np", "threads (default 2)"):argname("N"):convert(args.int("-np", 1))
  p:flag("--remove_postprocessed", "with -ref: do not keep IN/postprocessed/")
  return p
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "postprocess", argv, function(r)
    if not r.ref and not (r.o and r.pp_pkl_file) then
      error("apply needs -o and -pp_pkl_file; determine needs -ref", 0)
    end
    return r
  end)
  if not o then return code end
  local pp = require "lunet.postprocess"
  local threads = o.np or 2
  if o.ref then
    local steps = pp.determine(o.i, o.ref, { plans_json = o.plans_json, dataset_json = o.dataset_json,
      threads = threads, keep_postprocessed = not o.remove_postprocessed })
    io.write(string.format("%d postprocessing step(s) kept; written %s/postprocessing.pkl and .json\n", #steps, o.i))
    return 0
  end
  local steps = pp.load(o.pp_pkl_file)
  local files = pp.apply_to_folder(o.i, o.o, steps, { dataset_json = o.dataset_json, plans_json = o.plans_json,
    threads = threads })
  io.write(string.format("postprocessed %d file(s) into %s\n", #files, o.o))
  return 0
end

return M
