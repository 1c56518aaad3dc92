-- Wall-clock time in seconds with sub-millisecond resolution (os.time is whole seconds and
-- os.clock is CPU time of this process, which misses time the device threads spend).
local core = require "lunet.core"
return { now = core.now }
