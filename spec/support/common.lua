-- What many specs repeat: the checkout's root, reading files, running commands, and the
-- environment prefix that lets a spawned lua5.4 or scripts/lunet find this checkout's module.
local M = {}

-- specs run from the checkout's root (.busted; busted -C changes there before loading specs)
M.ROOT = require("lfs").currentdir()

function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

function M.readfile(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("a")
  f:close()
  return s
end

function M.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  f:write(s)
  f:close()
end

-- Runs a shell command with stderr folded into stdout: ok (exit status 0), output, exit code.
function M.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  local ok, _, code = p:close()
  return ok == true, out, code
end

-- `VAR=value ...` for the variables a child needs to load this checkout (paths, kernel cache).
function M.env_prefix()
  local parts = {}
  for _, n in ipairs({ "LUA_PATH", "LUA_CPATH", "LUNET_CACHE_DIR" }) do
    local v = os.getenv(n)
    if v then parts[#parts + 1] = n .. "=" .. M.quote(v) end
  end
  return table.concat(parts, " ")
end

-- Element-wise comparison of two arrays at a relative tolerance, floored at 1% of the largest |want| (so values
-- near zero are judged against the array's scale); names the first element outside it.
function M.assert_close(want, got, rel, what)
  assert(#want == #got, ("%s: %d values, want %d"):format(what or "", #got, #want))
  local m = 0
  for i = 1, #want do m = math.max(m, math.abs(want[i])) end
  for i = 1, #want do
    local tol = rel * math.max(math.abs(want[i]), 1e-2 * m, 1e-30)
    if not (math.abs(want[i] - got[i]) <= tol) then
      error(string.format("%s: element %d: want %.9g got %.9g (rel tol %g)", what or "", i, want[i], got[i], rel), 2)
    end
  end
end

return M
