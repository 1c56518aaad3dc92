-- The user-facing docs stay true to the code: the CLI reference is regenerated and compared,
-- and every command the guide names exists.
local function read(path)
  local f = assert(io.open(path))
  local s = f:read("a")
  f:close()
  return s
end

describe("docs", function()
  it("docs/cli.md is what scripts/gen-cli-doc.lua produces from the commands' usage", function()
    local p = assert(io.popen("lua5.4 scripts/gen-cli-doc.lua --print"))
    local generated = p:read("a")
    assert(p:close())
    assert.equal(generated, read("docs/cli.md"), "docs/cli.md is stale: run lua5.4 scripts/gen-cli-doc.lua")
  end)

  it("every `lunet COMMAND` named in the guide and README exists", function()
    local cli = require "lunet.cli"
    local known = {}
    for _, n in ipairs(cli.commands()) do known[n] = true end
    for _, doc in ipairs({"docs/guide.md", "README.md"}) do
      for cmd in read(doc):gmatch("`lunet (%w[%w_-]*)") do
        if cmd ~= "COMMAND" then assert.is_true(known[cmd] == true, doc .. " names unknown command lunet " .. cmd) end
      end
    end
  end)
end)
