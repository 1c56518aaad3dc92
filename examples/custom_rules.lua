-- A planning rule file: starts from nnU-Net's default rules and changes two decisions.
-- Use it with `lunet plan DATASET -pl examples/custom_rules.lua` or
-- lunet.plan(fp, {dataset_json = ..., rules = "examples/custom_rules.lua"}); compare_rules.lua
-- plans a dataset with both and prints the differences.
local base = require "lunet.rules.default"

return base.extend {
  name = "custom_rules",
  plans_name = "CustomPlans",
  -- A different spacing rule: the 10th percentile of each axis' spacings instead of the median,
  -- i.e. plan for the finest data rather than the typical case.
  target_spacing = function(ctx)
    local spacings, out = ctx.fingerprint.spacings, {}
    for axis = 1, #spacings[1] do
      local v = {}
      for i = 1, #spacings do v[i] = spacings[i][axis] end
      table.sort(v)
      out[axis] = v[math.floor(0.1 * (#v - 1)) + 1]
    end
    return out
  end,
  -- A bigger patch: twice the default along every axis (more context per window, smaller batch).
  -- Returning only the patch lets the planner derive the topology and check divisibility.
  patch_size = function(ctx, spacing, median)
    local patch = base.patch_size(ctx, spacing, median)
    local bigger = {}
    for d, p in ipairs(patch) do bigger[d] = 2 * p end
    return bigger
  end,
  trainer = { num_epochs = 300 },
}
