-- Temporary folders for specs.
local M = {}

function M.quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end

-- A new empty folder under the system's temporary directory.
function M.dir()
  local d = os.tmpname()
  os.remove(d)
  assert(os.execute("mkdir -p " .. M.quote(d)))
  return d
end

function M.remove(d) os.execute("rm -rf " .. M.quote(d)) end

return M
