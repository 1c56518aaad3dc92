-- Preprocessing resume against stale output (issue #26 item 1): a stored case is skipped only when its provenance
-- record (<case>.provenance.json: plans, configuration fields, raw files, payload hashes) still matches. A re-plan
-- that changes the target spacing, a fixed raw case, a flipped payload byte or a missing record redo the case; a
-- changed raw label refreshes gt_segmentations; nothing changed skips everything quickly. On the anisotropic MR
-- fixture (3 cases of nnunetv2's preprocess fixtures).
local lunet = require "lunet"
local json = require "lunet.util.json"
local pp = require "lunet.preprocess"
local prov = require "lunet.preprocess_provenance"
local dataset = require "lunet.dataset"
local planner = require "lunet.planner"
local clock = require "lunet.util.clock"
local tmp = require "spec.support.tmp"
local core = lunet.core

local F = "spec/fixtures/preprocess/Dataset901_LuAniso/"
local NAME = "Dataset901_LuAniso"
local CASES = { "an_000", "an_001", "an_002" }
local paths = require "lunet.util.paths"
local CFG = "3d_fullres"

local function slurp(p) local f = assert(io.open(p, "rb")); local s = f:read("a"); f:close(); return s end
local function spit(p, s) local f = assert(io.open(p, "wb")); f:write(s); f:close() end

describe("preprocess resume: stale output is redone", function()
  local root, raw, out, dir, plans_default, plans_path
  local function ds() return dataset.open(raw) end
  local function run(opts)
    opts = opts or {}
    local lines = {}
    local o = { threads = 2, progress = false, out_root = out, log = function(l) lines[#lines + 1] = l end }
    for k, v in pairs(opts) do o[k] = v end
    local s = pp.run(ds(), planner.read(plans_path), CFG, o)[CFG]
    s.lines = lines
    return s
  end
  -- the stored case equals the case preprocessed in memory from the current raw files and plans
  local function assert_current(case)
    local plans = planner.read(plans_path)
    local d = ds()
    local c
    for _, x in ipairs(d.cases) do if x.id == case then c = x end end
    local data, seg = pp.run_case(c.images, c.label, nil, plans, CFG, { labels = d.labels, threads = 2 })
    local st = lunet.io.store.open(dir .. case .. ".lcs")
    assert.are.same({ data.shape[2], data.shape[3], data.shape[4] }, st.shape)
    local sd, ss = st:read_patch({ 0, 0, 0 }, st.shape)
    st:close()
    assert.are.equal(data:bytes(), sd:bytes(), case .. ": stored data differs from the current preprocessing")
    assert.are.equal(seg:astype(ss.dtype):bytes(), ss:bytes())
  end
  local function reason_of(s, case)
    for _, r in ipairs(s.reasons) do if r.id == case then return r.reason end end
  end

  setup(function()
    root = tmp.dir()
    raw = root .. "/raw/" .. NAME
    out = root .. "/pre/" .. NAME
    assert(os.execute("mkdir -p " .. root .. "/raw " .. out))
    assert(os.execute("cp -r " .. F .. "raw " .. raw))
    -- plans made by Lunet's planner from the fixture's fingerprint, written where `lunet preprocess` reads them
    local fp = json.read(F .. "dataset_fingerprint.json")
    plans_default = planner.plan(fp, { dataset_json = json.read(raw .. "/dataset.json"), dataset_name = NAME })
    plans_path = out .. "/nnUNetPlans.json"
    planner.write(plans_default, plans_path)
    dir = out .. "/" .. planner.configuration(plans_default, CFG).data_identifier .. "/lunet/"
  end)
  teardown(function() if root then tmp.remove(root) end end)

  it("a first run preprocesses every case and records what each was made from", function()
    local s = run()
    assert.are.equal(3, s.done)
    assert.are.equal(0, s.redone)
    for _, case in ipairs(CASES) do
      local rec = json.read(dir .. case .. ".provenance.json")
      assert.are.equal(prov.FORMAT, rec.lunet_case_format)
      assert.are.equal("nnUNetPlans", rec.plans_name)
      assert.are.equal("imagesTr/" .. case .. "_0000.nii.gz", rec.raw[1].file)
      assert.are.equal("labelsTr/" .. case .. ".nii.gz", rec.raw[2].file)
      assert.are.equal(core.fileid.hash_file(raw .. "/" .. rec.raw[1].file), rec.raw[1].xxh64)
      assert.are.equal(core.fileid.hash_file(dir .. case .. ".lcs"), rec.payload.lcs.xxh64)
      assert.are.equal(core.fileid.hash_file(dir .. case .. ".json"), rec.payload.json.xxh64)
      assert.are.same(planner.configuration(plans_default, CFG).spacing, rec.config.spacing)
      assert.are.equal(slurp(raw .. "/labelsTr/" .. case .. ".nii.gz"), slurp(out .. "/gt_segmentations/" .. case .. ".nii.gz"))
      assert_current(case)
    end
  end)

  it("nothing changed: every case is up to date, quickly, and no file is rewritten", function()
    local before = {}
    for _, case in ipairs(CASES) do before[case] = { core.fileid.stat(dir .. case .. ".provenance.json") } end
    local t0 = clock.now()
    local s = run()
    local dt = clock.now() - t0
    assert.are.equal(0, s.done)
    assert.are.equal(3, s.skipped)
    assert.are.equal(0, s.gt_refreshed)
    assert.is_true(dt < 2, "resume check took " .. dt .. " s")
    for _, case in ipairs(CASES) do assert.are.same(before[case], { core.fileid.stat(dir .. case .. ".provenance.json") }) end
  end)

  it("a re-plan with a rule file that changes the target spacing redoes every case at the new spacing", function()
    local old = planner.configuration(plans_default, CFG).spacing
    local rules = root .. "/coarse_rules.lua"
    spit(rules, string.format([[
local base = require "lunet.rules.default"
return base.extend { target_spacing = function(ctx) return { %s, %s, %s } end }
]], old[1] * 1.5, old[2] * 1.5, old[3] * 1.5))
    local fp = json.read(F .. "dataset_fingerprint.json")
    local plans = planner.plan(fp, { rules = rules, dataset_json = json.read(raw .. "/dataset.json"), dataset_name = NAME })
    assert.are_not.same(old, planner.configuration(plans, CFG).spacing)
    planner.write(plans, plans_path)
    local s = run()
    assert.are.equal(3, s.done)
    assert.are.equal(3, s.redone)
    assert.truthy(reason_of(s, "an_000"):find("spacing changed", 1, true), reason_of(s, "an_000"))
    assert.truthy(s.lines[1]:find("3d_fullres: case an_000 redone because the configuration's spacing changed", 1, true))
    for _, case in ipairs(CASES) do
      assert_current(case)
      assert.are.same(planner.configuration(plans, CFG).spacing, json.read(dir .. case .. ".provenance.json").config.spacing)
    end
    assert.are.equal(0, run().done)
  end)

  it("a fixed raw image redoes that case only; a touched (same bytes) one does not", function()
    local p = raw .. "/imagesTr/an_001_0000.nii.gz"
    local img = lunet.io.image.read(p)
    local flat = img.data:astype("f32"):flat()
    for i = 1, #flat, 7 do flat[i] = flat[i] * 0.5 + 3 end
    lunet.io.image.write(p, core.tensor(flat, { shape = img.data.shape, dtype = "f32" }), img)
    local s = run()
    assert.are.equal(1, s.done)
    assert.are.equal(2, s.skipped)
    assert.are.equal("raw file imagesTr/an_001_0000.nii.gz changed", reason_of(s, "an_001"))
    assert_current("an_001")
    -- same bytes, new time (a touch, a copy): kept, and the record takes the new time so the next check is quick
    local q = raw .. "/imagesTr/an_002_0000.nii.gz"
    os.execute("sleep 0.01; touch " .. tmp.quote(q))
    s = run()
    assert.are.equal(0, s.done)
    local _, mt = core.fileid.stat(q)
    assert.are.equal(mt, json.read(dir .. "an_002.provenance.json").raw[1].mtime_ns)
  end)

  it("a same-size edit with the old time put back passes the size+time shortcut; --rehash catches it", function()
    local p = raw .. "/imagesTr/an_000_0000.nii.gz"
    local keep = root .. "/an_000_times"
    spit(keep, "")
    core.fileid.copy_mtime(p, keep)
    local bytes = slurp(p)
    local k = 6 -- in the gzip header's MTIME field: same length, other bytes, still a valid file
    spit(p, bytes:sub(1, k - 1) .. string.char(bytes:byte(k) ~ 1) .. bytes:sub(k + 1))
    core.fileid.copy_mtime(keep, p) -- as cp -p / rsync -t / touch -d would
    assert.are.equal(0, run().done)
    local s = run({ rehash = true })
    assert.are.equal(1, s.done)
    assert.are.equal("raw file imagesTr/an_000_0000.nii.gz changed", reason_of(s, "an_000"))
    spit(p, bytes) -- back as it was (new time: found by its hash, so redone once more)
    assert.are.equal(1, run().done)
  end)

  it("a changed raw label redoes the case and refreshes gt_segmentations", function()
    local p = raw .. "/labelsTr/an_002.nii.gz"
    local lab = lunet.io.image.read(p)
    local flat = lab.data:astype("i32"):flat()
    local cleared = 0
    for i = 1, #flat do if flat[i] ~= 0 and cleared < 20 then flat[i] = 0; cleared = cleared + 1 end end
    assert.is_true(cleared > 0)
    lunet.io.image.write_seg(p, core.tensor(flat, { shape = lab.data.shape, dtype = "i32" }), lab)
    local s = run()
    assert.are.equal(1, s.done)
    assert.are.equal("raw file labelsTr/an_002.nii.gz changed", reason_of(s, "an_002"))
    assert.are.equal(1, s.gt_refreshed)
    assert.are.equal(slurp(p), slurp(out .. "/gt_segmentations/an_002.nii.gz"))
    assert_current("an_002")
    -- a gt copy edited by hand is replaced by the raw label again
    spit(out .. "/gt_segmentations/an_000.nii.gz", "not a label")
    assert.are.equal(1, run().gt_refreshed)
    assert.are.equal(slurp(raw .. "/labelsTr/an_000.nii.gz"), slurp(out .. "/gt_segmentations/an_000.nii.gz"))
  end)

  it("a flipped payload byte (store chunk or properties) redoes the case to the same bytes", function()
    local lcs, pj = dir .. "an_000.lcs", dir .. "an_001.json"
    local ref_lcs, ref_json = slurp(lcs), slurp(pj)
    local k = #ref_lcs - 40 -- inside the last chunk: the store's header and index checks do not see it
    spit(lcs, ref_lcs:sub(1, k - 1) .. string.char(ref_lcs:byte(k) ~ 0x10) .. ref_lcs:sub(k + 1))
    assert.is_true(core.store.valid(lcs)) -- what the old resume check looked at
    spit(pj, (ref_json:gsub("%d", function(d) return tostring((tonumber(d) + 1) % 10) end, 1)))
    local s = run()
    assert.are.equal(2, s.done)
    assert.are.equal("its stored .lcs differs from what was written (damaged or edited)", reason_of(s, "an_000"))
    assert.are.equal("its stored .json differs from what was written (damaged or edited)", reason_of(s, "an_001"))
    assert.are.equal(ref_lcs, slurp(lcs))
    assert.are.equal(ref_json, slurp(pj))
  end)

  it("a case without a record (killed after its data, before the record) is redone; a damaged record too", function()
    local ref = slurp(dir .. "an_002.lcs")
    os.remove(dir .. "an_002.provenance.json")
    spit(dir .. "an_001.provenance.json", "{\"lunet_case_format\": 1, \"pla")
    local s = run()
    assert.are.equal(2, s.done)
    assert.truthy(reason_of(s, "an_002"):find("no provenance record", 1, true))
    assert.are.equal("its provenance record is damaged", reason_of(s, "an_001"))
    assert.are.equal(ref, slurp(dir .. "an_002.lcs"))
  end)

  it("temporary files of a killed writer are removed by the next run (store, properties, gt copies)", function()
    spit(dir .. "an_000.lcs.tmp-Ab12Cd", "half a store")
    spit(dir .. "an_001.json.tmp1796548979.630734673", "half a json")
    spit(out .. "/gt_segmentations/an_000.nii.gz.tmp1796548979.12", "half a label")
    spit(dir .. "notes.tmp.txt", "a user's file")
    local s = run()
    assert.are.equal(0, s.done)
    assert.is_nil(io.open(dir .. "an_000.lcs.tmp-Ab12Cd"))
    assert.is_nil(io.open(dir .. "an_001.json.tmp1796548979.630734673"))
    assert.is_nil(io.open(out .. "/gt_segmentations/an_000.nii.gz.tmp1796548979.12"))
    assert.are.equal("a user's file", slurp(dir .. "notes.tmp.txt"))
    os.remove(dir .. "notes.tmp.txt")
    assert.is_nil(io.open(out .. "/gt_segmentations/.lunet.lock"))
  end)

  it("another plans name or Lunet case format redoes the cases", function()
    local s = run({ plans_name = "OtherPlans" })
    assert.are.equal(3, s.redone)
    assert.are.equal("the plans changed (nnUNetPlans, now OtherPlans)", reason_of(s, "an_000"))
    local old = prov.FORMAT
    prov.FORMAT = old + 1
    local ok, s2 = pcall(run, { plans_name = "OtherPlans" })
    prov.FORMAT = old
    assert.is_true(ok, s2)
    assert.are.equal(3, s2.redone)
    assert.truthy(reason_of(s2, "an_000"):find("Lunet case format 1", 1, true))
    assert.are.equal(3, run().redone) -- back to nnUNetPlans
  end)

  it("nnU-Net's own cases in the folder are kept and reported; --clean removes everything and redoes all", function()
    local parent = dir:gsub("lunet/$", "")
    spit(parent .. "an_000.pkl", "nnU-Net properties")
    spit(parent .. "an_000.b2nd", "nnU-Net data")
    local s = run()
    assert.are.equal(0, s.done)
    assert.are.equal(1, s.foreign)
    assert.are.equal("nnU-Net data", slurp(parent .. "an_000.b2nd"))
    local line = require("lunet.cli.preprocess").summary_line(CFG, s)
    assert.truthy(line:find("3d_fullres: 0 cases preprocessed, 3 up to date -> " .. dir:sub(1, -2), 1, true), line)
    assert.truthy(line:find("1 cases in nnU-Net's own format", 1, true), line)
    spit(dir .. "stray.tmp", "x")
    s = run({ clean = true })
    assert.are.equal(3, s.done)
    assert.are.equal(0, s.redone) -- nothing was left to redo: all new
    assert.are.equal(0, s.foreign)
    assert.is_nil(io.open(parent .. "an_000.pkl"))
    assert.is_nil(io.open(dir .. "stray.tmp"))
    assert.are.equal(3, s.gt_refreshed)
    for _, case in ipairs(CASES) do assert_current(case) end
  end)

  it("keeps Lunet's cases in <data_identifier>/lunet/, so the folder nnunetv2 trains from holds only its files, " ..
     "and moves cases of the earlier layout there", function()
    run()
    local parent = dir:gsub("lunet/$", "")
    -- nnunetv2's infer_dataset_class: one file ending besides pkl/npy among the folder's files (not folders)
    local endings = {}
    for _, n in ipairs(paths.listdir(parent)) do
      if paths.isfile(parent .. n) then endings[n:match("%.([^.]+)$") or n] = true end
    end
    assert.are.same({}, endings)
    -- an earlier Lunet wrote its cases beside nnU-Net's: they move, and are still up to date
    for _, case in ipairs(CASES) do
      for _, ext in ipairs { ".lcs", ".json", ".provenance.json" } do
        assert(os.rename(dir .. case .. ext, parent .. case .. ext))
      end
    end
    local s = run()
    assert.are.equal(0, s.done)
    assert.are.equal(#CASES, s.skipped)
    for _, case in ipairs(CASES) do
      assert.is_true(paths.isfile(dir .. case .. ".lcs"))
      assert.is_false(paths.isfile(parent .. case .. ".lcs"))
    end
  end)

  it("the summary line counts the reasons", function()
    local line = require("lunet.cli.preprocess").summary_line("2d", { done = 3, skipped = 11, redone = 3, folder = "/x",
      reasons = { { id = "a", reason = "r1" }, { id = "b", reason = "r2" }, { id = "c", reason = "r1" } } })
    assert.are.equal("2d: 3 cases preprocessed, 11 up to date, 3 redone (2 because r1; 1 because r2) -> /x", line)
    line = require("lunet.cli.preprocess").summary_line("2d", { done = 14, skipped = 0, redone = 14, folder = "/x",
      reasons = { { id = "a", reason = "the configuration's spacing changed" } } })
    assert.are.equal("2d: 14 cases preprocessed, 0 up to date, 14 redone because the configuration's spacing changed -> /x",
      line)
  end)
end)

describe("lunet.core.fileid", function()
  it("XXH64 equals the reference vectors (xxHash's own, seed 0), whole files and streams alike", function()
    local h = core.fileid.hash
    assert.are.equal("xxh64:ef46db3751d8e999", h(""))
    assert.are.equal("xxh64:d24ec4f1a98c6e5b", h("a"))
    assert.are.equal("xxh64:44bc2cf5ad770999", h("abc"))
    assert.are.equal("xxh64:fbcea83c8a378bf1", h("Nobody inspects the spammish repetition"))
    local d = tmp.dir()
    local big = string.rep("abcdefghij", 300000) -- crosses the 1 MiB read blocks
    spit(d .. "/f", big)
    assert.are.equal("xxh64:a954ec1dc227695b", core.fileid.hash_file(d .. "/f"))
    assert.are.equal(h(big), core.fileid.hash_file(d .. "/f"))
    local size = core.fileid.stat(d .. "/f")
    assert.are.equal(#big, size)
    assert.is_nil((core.fileid.stat(d .. "/missing")))
    tmp.remove(d)
  end)
end)
