-- `lunet.plan(fingerprint, opts)`: the design's short name for lunet.planner (same table, callable).
return require "lunet.planner"
