-- lunet.util: helpers the stages share (json, paths, fs, term, clock, plot), loaded on first use.
return require("lunet.util.lazy").package({}, "lunet.util")
