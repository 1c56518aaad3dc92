-- lunet postprocess: nnUNetv2_apply_postprocessing (and nnUNetv2_determine_postprocessing with -ref).
local USAGE = [[
usage: lunet postprocess -i IN -o OUT (-pp_pkl_file F | --pp F) [-plans_json P] [-dataset_json D] [-np N]
       lunet postprocess -i PRED_DIR -ref GT_DIR [-plans_json P] [-dataset_json D] [-np N] [--remove_postprocessed]

Apply: runs the steps of a postprocessing description (postprocessing.pkl or postprocessing.json, nnU-Net's
or Lunet's) on every segmentation of IN, writing OUT.
Determine (-ref): nnU-Net's determine_postprocessing: tries keeping the largest connected component of
the foreground, then of each label/region, keeps what improves Dice; writes PRED_DIR/postprocessing.pkl
and .json and PRED_DIR/postprocessed/. plans/dataset json default to the input folder's.
]]

local function run(args)
  local o = { threads = 2 }
  local i = 1
  while i <= #args do
    local a, v = args[i], args[i + 1]
    if a == "-h" or a == "--help" then io.write(USAGE) return 0
    elseif a == "-i" then o.i = v; i = i + 1
    elseif a == "-o" then o.o = v; i = i + 1
    elseif a == "-ref" then o.ref = v; i = i + 1
    elseif a == "-pp_pkl_file" or a == "--pp" then o.pp = v; i = i + 1
    elseif a == "-plans_json" then o.plans_json = v; i = i + 1
    elseif a == "-dataset_json" then o.dataset_json = v; i = i + 1
    elseif a == "-np" then o.threads = math.tointeger(tonumber(v)) or error("-np needs an integer", 0); i = i + 1
    elseif a == "--remove_postprocessed" then o.remove = true
    else io.stderr:write("lunet postprocess: unknown argument " .. a .. "\n" .. USAGE) return 2 end
    i = i + 1
  end
  local pp = require "lunet.postprocess"
  if not o.i then io.stderr:write(USAGE) return 2 end
  if o.ref then
    local steps = pp.determine(o.i, o.ref, { plans_json = o.plans_json, dataset_json = o.dataset_json,
      threads = o.threads, keep_postprocessed = not o.remove })
    io.write(string.format("%d postprocessing step(s) kept; written %s/postprocessing.pkl and .json\n", #steps, o.i))
    return 0
  end
  if not o.o or not o.pp then io.stderr:write(USAGE) return 2 end
  local steps = pp.load(o.pp)
  local files = pp.apply_to_folder(o.i, o.o, steps, { dataset_json = o.dataset_json, plans_json = o.plans_json,
    threads = o.threads })
  io.write(string.format("postprocessed %d file(s) into %s\n", #files, o.o))
  return 0
end

return { summary = "apply (or determine with -ref) nnU-Net's connected-component postprocessing", usage = USAGE, run = run }
