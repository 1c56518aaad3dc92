-- `lunet plan_and_preprocess DATASET ...`: nnUNetv2_plan_and_preprocess (fingerprint, plan, preprocess).
local args = require "lunet.cli.args"
local fingerprint = require "lunet.cli.fingerprint"
local plan = require "lunet.cli.plan"
local preprocess = require "lunet.cli.preprocess"

local M = args.command({ summary = "fingerprint + plan + preprocess a dataset (nnUNetv2_plan_and_preprocess)" })

function M.parser()
  local p = args.parser("plan_and_preprocess", [[
Runs `lunet fingerprint`, `lunet plan` and `lunet preprocess` on DATASET in one go; several datasets (or nnU-Net's
`-d 1 2 3`) are done one after another with the same options, stopping at the first that fails. Every option is
checked before the first dataset's fingerprint is computed.]])
  p:argument("DATASET", "dataset ids or names (or give them with -d)"):args("*")
  p:option("-d", "dataset ids or names (nnU-Net's spelling)"):args("+"):argname("DATASET")
  p:option("-fpe", "fingerprint extractor: Lunet has nnU-Net's DatasetFingerprintExtractor (the default) only")
    :argname("CLASS"):choices({ "DatasetFingerprintExtractor" })
  p:option("-npfp", "fingerprint threads (default 2)"):argname("N"):convert(args.int("-npfp", 1))
  p:flag("--verify_dataset_integrity", "run `lunet verify` first and stop (exit 1) when it finds a problem")
  p:flag("--no_pp", "stop after planning")
  p:flag("--clean", "recompute the fingerprint even if it exists, and redo every preprocessed case "
    .. "(preprocess --clean); without it, stale cases are still redone (see lunet preprocess -h)")
  plan.declare(p)
  preprocess.declare(p)
  p:flag("-v --verbose", "one line per redone case with the reason")
  p:flag("-q", "no progress bars")
  return p
end

--- One dataset: verify (asked), fingerprint, plan, preprocess.
local function run_one(ds, o)
  if o.verify then
    -- nnU-Net's --verify_dataset_integrity: the raw dataset is checked before anything is computed from it
    local vargs = { ds }
    if o.quiet then vargs[2] = "-q" end
    local vrc = require("lunet.cli.verify").run(vargs)
    if vrc ~= 0 then return vrc end
  end
  local rc = fingerprint.extract({ ds = ds, threads = o.npfp, clean = o.clean, quiet = o.quiet })
  if rc ~= 0 then return rc end
  o.plan.ds = ds
  rc = plan.plan(o.plan)
  if rc ~= 0 or o.no_pp then return rc end
  o.pp.ds = ds
  local ok, res = pcall(preprocess.preprocess, o.pp)
  if not ok then io.stderr:write("lunet preprocess: " .. tostring(res) .. "\n") return 2 end
  return res
end

function M.run(argv)
  local o, code = args.parse_or_status(M.parser(), "plan_and_preprocess", argv, function(r)
    local datasets = {}
    for _, list in ipairs({ r.DATASET or {}, r.d or {} }) do table.move(list, 1, #list, #datasets + 1, datasets) end
    if #datasets == 0 then error("missing DATASET", 0) end
    local planned = plan.options(r)
    local cfgs, np = preprocess.configurations_and_threads(r)
    return { datasets = datasets, npfp = r.npfp or 2, clean = r.clean or false, quiet = r.q or false,
      no_pp = r.no_pp, verify = r.verify_dataset_integrity, plan = planned,
      pp = { cfgs = cfgs, np = np, plans_name = planned.plans_identifier, quiet = r.q or false,
        clean = r.clean or false, rehash = false, verbose = r.verbose or false } }
  end)
  if not o then return code end
  for _, ds in ipairs(o.datasets) do
    local rc = run_one(ds, o)
    if rc ~= 0 then return rc end
  end
  return 0
end

return M
