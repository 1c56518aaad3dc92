-- The user-facing docs stay true to the code: the CLI reference is regenerated and compared, every
-- command the guide names exists, the rockspec declares what the code requires, and every fenced code
-- block in README.md and docs/*.md runs as written.
--
-- Code blocks, by info string (the first word is the language, the rest are the runner's marks):
--   ```lua / ```sh             run: lua5.4 with this checkout's module, or sh -e; in one shared work
--                              folder, in document order (README.md, docs/guide.md, the other pages),
--                              so a later block uses what an earlier one made, as a reader would
--   ```lua file=NAME           a file a reader saves (a rule or trainer file): written to the work folder
--                              before any block runs, and it must load and return a table
--   ```sh checkout             runs in the checkout's root instead of the work folder
--   ```lua no-run: REASON      not run, for the reason given (a reason is required)
--   ```text                    output, layouts, synopses: not code
-- Any other block fails the spec, so a block is never skipped silently. docs/cli.md is generated from
-- the commands' help (scripts/gen-cli-doc.lua): its blocks are help text, checked by the first spec.
--
-- The work folder's nnUNet_raw/_preprocessed/_results start empty; blocks make the demo dataset themselves.
-- To stay fast the runner shortens training, and only that: `lunet train` gets `--epochs 1 --iters 2
-- --val-iters 1` appended (a `lunet` wrapper first on PATH) and lunet.trainer.train gets the same
-- schedule in Lua blocks. Everything else runs as written.
local C = require "spec.support.common"
local tmp = require "spec.support.tmp"

local DOCS = { "README.md", "docs/guide.md" } -- first: the guide's workflow makes what later pages use
do
  local p = assert(io.popen("ls docs/*.md"))
  for f in p:lines() do if f ~= "docs/guide.md" then DOCS[#DOCS + 1] = f end end
  p:close()
end
local GENERATED = { ["docs/cli.md"] = "by `scripts/gen-cli-doc.lua`" }

-- Every fenced block: { file, line, lang, marks, text }.
local function blocks_of(file)
  local out, cur, n = {}, nil, 0
  for line in (C.readfile(file) .. "\n"):gmatch("(.-)\n") do
    n = n + 1
    local fence, info = line:match("^%s*(```+)%s*(.-)%s*$")
    if cur then
      if fence and info == "" then out[#out + 1] = cur; cur = nil
      else cur.text = cur.text .. line .. "\n" end
    elseif fence then
      local lang, marks = info:match("^(%S*)%s*(.-)$")
      cur = { file = file, line = n, lang = lang, marks = marks, text = "" }
    end
  end
  assert(cur == nil, file .. ": a code block opened at line " .. (cur and cur.line or 0) .. " is never closed")
  return out
end

-- What the runner does with a block: "run", "file", "skip" or nil plus why the block is not acceptable.
local function kind_of(b)
  if GENERATED[b.file] then return "skip" end
  if b.lang == "text" then return "skip" end
  if b.lang ~= "lua" and b.lang ~= "sh" then
    return nil, ("unmarked or unknown block ```%s: use lua, sh or text"):format(b.lang)
  end
  local reason = b.marks:match("^no%-run:%s*(.*)$")
  if reason then
    if #reason < 10 then return nil, "no-run needs a reason" end
    return "skip"
  end
  if b.marks:match("^file=%S+$") then return b.lang == "lua" and "file" or nil, "file= is for lua blocks" end
  if b.marks ~= "" and b.marks ~= "checkout" then return nil, "unknown marks: " .. b.marks end
  return "run"
end

local function where(b) return ("%s:%d"):format(b.file, b.line) end

describe("docs", function()
  it("docs/cli.md is what scripts/gen-cli-doc.lua produces from the commands' usage", function()
    local p = assert(io.popen("lua5.4 scripts/gen-cli-doc.lua --print"))
    local generated = p:read("a")
    assert(p:close())
    assert.equal(generated, C.readfile("docs/cli.md"), "docs/cli.md is stale: run lua5.4 scripts/gen-cli-doc.lua")
    -- the runner skips the generated page's blocks on the strength of this comparison and this line
    assert.truthy(generated:find(GENERATED["docs/cli.md"], 1, true), "docs/cli.md no longer says it is generated")
  end)

  it("every `lunet COMMAND` named in the guide and README exists", function()
    local cli = require "lunet.cli"
    local known = {}
    for _, n in ipairs(cli.commands()) do known[n] = true end
    for _, doc in ipairs({"docs/guide.md", "README.md"}) do
      for cmd in C.readfile(doc):gmatch("`lunet (%w[%w_-]*)") do
        if cmd ~= "COMMAND" then assert.is_true(known[cmd] == true, doc .. " names unknown command lunet " .. cmd) end
      end
    end
  end)

  it("the rockspec's dependencies name every module lua/ requires from outside Lunet", function()
    local rock_of = { lfs = "luafilesystem", cjson = "lua-cjson", argparse = "argparse", lpeg = "lpeg" }
    local spec = {}
    assert(load(C.readfile("rockspec/lunet-scm-1.rockspec"), "rockspec", "t", spec))()
    local declared = {}
    for _, d in ipairs(spec.dependencies) do declared[d:match("^(%S+)")] = true end
    local seen = {}
    local p = assert(io.popen("find lua -name '*.lua'"))
    for file in p:lines() do
      for m in C.readfile(file):gmatch("require%s*%(?%s*[\"']([^\"']+)[\"']") do
        local mod = m:match("^[^.]+")
        if mod ~= "lunet" and not seen[mod] then
          seen[mod] = true
          local rock = rock_of[mod]
          assert.is_not_nil(rock, file .. " requires " .. mod .. ": add its rock to this spec's table and the rockspec")
          assert.is_true(declared[rock] == true, file .. " requires " .. mod .. " but the rockspec does not declare " .. rock)
        end
      end
    end
    p:close()
    assert.is_true(seen.lfs, "the scan found no require of lfs: is the pattern broken?")
  end)

  it("rejects unmarked code blocks and runs every marked one as written", function()
    local all = {}
    for _, f in ipairs(DOCS) do for _, b in ipairs(blocks_of(f)) do all[#all + 1] = b end end
    assert.is_true(#all > 20, "found only " .. #all .. " code blocks")
    local bad = {}
    for _, b in ipairs(all) do
      local k, why = kind_of(b)
      b.kind = k
      if not k then bad[#bad + 1] = where(b) .. ": " .. why end
    end
    assert.equal("", table.concat(bad, "\n"))

    local work = tmp.dir()
    finally(function() if os.getenv("LUNET_KEEP_DOCS_WORK") == nil then tmp.remove(work) end end)
    for _, d in ipairs({ "bin", "raw", "preprocessed", "results", "blocks" }) do os.execute("mkdir -p " .. work .. "/" .. d) end
    -- the only liberty taken: training runs a tiny schedule (see the header)
    C.writefile(work .. "/bin/lunet", ([[#!/bin/sh
if [ "$1" = train ]; then exec lua5.4 %s/scripts/lunet "$@" --epochs 1 --iters 2 --val-iters 1 -q; fi
exec lua5.4 %s/scripts/lunet "$@"
]]):format(C.ROOT, C.ROOT))
    os.execute("chmod +x " .. work .. "/bin/lunet")
    local short = 'local t = require "lunet.trainer"; local real = t.train; ' ..
      't.train = function(o) o.epochs, o.iterations, o.val_iterations = 1, 2, 1; return real(o) end'
    local env = table.concat({ C.env_prefix(), "PATH=" .. C.quote(work .. "/bin:" .. os.getenv("PATH")),
      "nnUNet_raw=" .. work .. "/raw", "nnUNet_preprocessed=" .. work .. "/preprocessed",
      "nnUNet_results=" .. work .. "/results" }, " ")

    for _, b in ipairs(all) do
      if b.kind == "file" then
        local name = b.marks:match("^file=(%S+)$")
        C.writefile(work .. "/" .. name, b.text)
        local ok, out = C.run(("cd %s && %s lua5.4 -e %s"):format(work, env,
          C.quote(("assert(type(dofile(%q)) == 'table', 'does not return a table')"):format(name))))
        assert.is_true(ok, where(b) .. ": " .. name .. " does not load:\n" .. out)
      end
    end
    local failed = {}
    for i, b in ipairs(all) do
      if b.kind == "run" then
        local path = ("%s/blocks/%03d.%s"):format(work, i, b.lang)
        C.writefile(path, b.text)
        local cmd
        if b.lang == "lua" then
          cmd = ("cd %s && %s lua5.4 -e %s %s </dev/null"):format(work, env, C.quote(short), path)
        else
          cmd = ("cd %s && %s sh -e %s </dev/null"):format(b.marks == "checkout" and C.ROOT or work, env, path)
        end
        local t0 = os.time()
        local ok, out = C.run(cmd)
        if os.getenv("LUNET_DOCS_VERBOSE") then io.stderr:write(("%s: %ds\n"):format(where(b), os.time() - t0)) end
        -- go on after a failure: the report then lists every block that fails, not only the first
        if not ok then failed[#failed + 1] = where(b) .. " fails as written:\n" .. b.text .. "---- output:\n" .. out end
      end
    end
    assert.equal("", table.concat(failed, "\n"))
  end)
end)
