-- Plans one dataset with the default rules and with custom_rules.lua and prints what changed.
--   lua5.4 examples/compare_rules.lua [DATASET_FINGERPRINT.json DATASET.json]
-- Without arguments it uses the bundled demo dataset (built under /tmp/lunet-example).
local lunet = require "lunet"
local json = lunet.util.json
local here = arg[0]:match("^(.*)/[^/]*$") or "."

local fp, dj = arg[1], arg[2]
if not fp then
  local work = os.getenv("LUNET_EXAMPLE_DIR") or "/tmp/lunet-example"
  lunet.util.paths.set_roots{raw = work .. "/raw", preprocessed = work .. "/preprocessed", results = work .. "/results"}
  os.execute("mkdir -p " .. work .. "/raw")
  local ds = lunet.dataset.open(lunet.demo.make_dataset(lunet.util.paths.raw(), {step = 4}))
  fp, dj = lunet.fingerprint(ds), ds.json
end

local default = lunet.plan(fp, {dataset_json = dj})
local custom = lunet.plan(fp, {dataset_json = dj, rules = here .. "/custom_rules.lua"})

local function show(v) return type(v) == "table" and json.encode(v) or tostring(v) end
for _, name in ipairs(json.keys(default.configurations)) do
  local a = lunet.planner.configuration(default, name)
  local b = custom.configurations[name] and lunet.planner.configuration(custom, name)
  print("configuration " .. name)
  if not b then print("  (not planned by the custom rules)") else
    for _, key in ipairs({"spacing", "patch_size", "batch_size"}) do
      print(string.format("  %-12s default %-22s custom %s", key, show(a[key]), show(b[key])))
    end
    local fa, fb = a.architecture.arch_kwargs.features_per_stage, b.architecture.arch_kwargs.features_per_stage
    print(string.format("  %-12s default %-22s custom %s", "features", show(fa), show(fb)))
  end
end
