-- nnU-Net's own models in Lunet and Lunet's checkpoints in nnU-Net's format (issue #27). The models were trained by
-- nnunetv2 itself and predicted with nnUNetv2_predict (scripts/fixtures/make_interop_fixtures.py): Lunet reads
-- their results folders as they are, with no Python.
local lunet = require "lunet"
local core = lunet.core
local json = require "lunet.util.json"
local paths = require "lunet.util.paths"
local image = require "lunet.io.image"
local predict = require "lunet.predict"
local checkpoint = require "lunet.io.checkpoint"
local netlib = require "lunet.net"
local tmp = require "spec.support.tmp"

local FX = "spec/fixtures/interop/"
local manifest = json.read(FX .. "manifest.json")
local P = core.pickle

local function model(name)
  for _, m in ipairs(manifest.models) do if m.name == name then return m end end
  error("no model " .. name)
end

local function ckpt_of(m) return FX .. m.folder .. "/fold_0/checkpoint_final.pth" end

-- share of equal voxels between two label images
local function agreement(a, b)
  local x, y = image.read(a).data, image.read(b).data
  assert.are.same(x.shape, y.shape)
  local n, eq = 0, 0
  local fx, fy = x:flat(), y:flat()
  for i = 1, #fx do
    n = n + 1
    if fx[i] == fy[i] then eq = eq + 1 end
  end
  return eq / n
end

local function net_for(m)
  local dir = FX .. m.folder
  local plans, dj = json.read(dir .. "/plans.json"), json.read(dir .. "/dataset.json")
  local info = require("lunet.labels").of_dataset_json(dj)
  return netlib.new(plans, m.configuration, 1, info.num_segmentation_heads, { dataset_json = dj }), plans, dj
end

local function cases() return { "case_010", "case_011" } end

describe("nnunetv2's models in Lunet", function()
  for _, name in ipairs { "2d", "3d", "resenc3d" } do
    for _, tta in ipairs { "notta", "tta" } do
      it(("%s (%s): lunet predict -m on nnunetv2's results folder equals nnUNetv2_predict"):format(name, tta), function()
        local m = model(name)
        local out = tmp.dir()
        local code = require("lunet.cli").main({ "predict", "-i", FX .. "raw/imagesTs", "-o", out, "-m", FX .. m.folder,
          "-f", "0", tta == "notta" and "--disable-tta" or nil })
        assert.are.equal(0, code)
        for _, c in ipairs(cases()) do
          local a = agreement(out .. "/" .. c .. ".nii.gz", FX .. "pred/" .. name .. "_" .. tta .. "/" .. c .. ".nii.gz")
          assert.is_true(a >= 0.999, ("%s %s %s: %.5f of voxels agree"):format(name, tta, c, a))
        end
        tmp.remove(out)
      end)
    end
  end

  it("lunet predict -d/-c/-tr finds nnunetv2's model under nnUNet_results, and reads its mirror axes", function()
    local m = model("3d")
    local h = checkpoint.read(ckpt_of(m))
    assert.are.same({ 0, 1, 2 }, h.mirror_axes)
    assert.are.equal("3d_fullres", h.configuration)
    assert.are.equal("nnUNetTrainer_1epoch", h.trainer_name)
    assert.are.equal(0, h.fold)
    local out = tmp.dir()
    paths.set_roots { results = FX .. "results" }
    local ok, code = pcall(require("lunet.cli").main, { "predict", "-i", FX .. "raw/imagesTs", "-o", out, "-d", "901",
      "-c", "3d_fullres", "-tr", "nnUNetTrainer_1epoch", "-f", "0", "--disable-tta" })
    paths.set_roots { results = false } -- back to the environment's
    assert.is_true(ok, tostring(code))
    assert.are.equal(0, code)
    for _, c in ipairs(cases()) do
      assert.is_true(agreement(out .. "/" .. c .. ".nii.gz", FX .. "pred/3d_notta/" .. c .. ".nii.gz") >= 0.999)
    end
    tmp.remove(out)
  end)

  it("the state_dict keys Lunet writes are nnunetv2's, in its order (aliases included)", function()
    for _, name in ipairs { "2d", "3d", "resenc3d" } do
      local m = model(name)
      local net = net_for(m)
      local names = {}
      for i, p in ipairs(net.core:params()) do names[i] = p.name end
      local keys = {}
      for i, e in ipairs(checkpoint.state_dict_keys(names)) do keys[i] = e.key end
      local tree = P.torch_load(ckpt_of(m))
      assert.are.same(P.keys(tree.network_weights), keys, name)
    end
  end)

  it("a checkpoint saved by Lunet holds nnunetv2's weights and momentum exactly, under nnU-Net's keys", function()
    local m = model("resenc3d")
    local net = net_for(m)
    local src = ckpt_of(m)
    net:load(src)
    local d = tmp.dir()
    local f = d .. "/checkpoint_latest.pth"
    net:save(f, { current_epoch = 1, logging = { train_losses = { 0.5 }, lrs = { 0.01 } }, best_ema = 0 / 0,
      fold = 0, trainer_name = "nnUNetTrainer_1epoch", inference_allowed_mirroring_axes = { 0, 1, 2 } })
    local a, b = P.torch_load(src), P.torch_load(f)
    for _, k in ipairs { "network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema",
                         "current_epoch", "init_args", "trainer_name", "inference_allowed_mirroring_axes" } do
      assert.is_not_nil(b[k], k)
    end
    assert.are.same(P.keys(a.network_weights), P.keys(b.network_weights))
    for _, k in ipairs(P.keys(a.network_weights)) do
      assert.are.same(a.network_weights[k].shape, b.network_weights[k].shape, k)
      assert.are.equal(a.network_weights[k]:bytes(), b.network_weights[k]:bytes(), k)
    end
    -- torch keeps no buffer for a parameter that never had a gradient (here 2 of them); Lunet writes every
    -- buffer, zero where torch had none (SGD then continues identically)
    local sa, sb = a.optimizer_state.state, b.optimizer_state.state
    assert.are.equal(#net.core:params(), #P.keys(sb))
    assert.is_true(#P.keys(sa) >= #P.keys(sb) - 2)
    for i = 0, #net.core:params() - 1 do
      if sa[i] then
        assert.are.equal(sa[i].momentum_buffer:bytes(), sb[i].momentum_buffer:bytes(), "momentum " .. i)
      else
        assert.are.equal(string.rep("\0", #sb[i].momentum_buffer:bytes()), sb[i].momentum_buffer:bytes())
      end
    end
    local ga, gb = a.optimizer_state.param_groups[1], b.optimizer_state.param_groups[1]
    assert.are.same(P.keys(ga), P.keys(gb))
    assert.are.equal(#ga.params, #gb.params)
    assert.is_true(b._best_ema ~= b._best_ema) -- NaN travels as a float
    assert.are.equal(1, b.current_epoch)
    assert.are.equal("3d_fullres", b.init_args.configuration)
    assert.are.same({ 0, 1, 2 }, { table.unpack(b.inference_allowed_mirroring_axes) })
    -- no mirroring is written as None (nnUNetTrainerNoMirroring's value) and read back as no axes
    local f2 = d .. "/checkpoint_nomirror.pth"
    net:save(f2, { current_epoch = 1, inference_allowed_mirroring_axes = {} })
    assert.are.equal(P.None, P.torch_load(f2).inference_allowed_mirroring_axes)
    assert.are.same({}, checkpoint.read(f2).mirror_axes)
    -- and it loads back into a network bit for bit
    local net2 = net_for(m)
    net2:load(f)
    assert.are.equal(net.core:flat(0), net2.core:flat(0))
    assert.are.equal(net.core:flat(2), net2.core:flat(2))
    tmp.remove(d)
  end)

  it("a flipped byte in a checkpoint is a checksum error naming the file", function()
    local d = tmp.dir()
    local f = d .. "/checkpoint_final.pth"
    local bytes = io.open(ckpt_of(model("3d")), "rb"):read("a")
    -- a byte inside a weight tensor's storage (found by its bytes), not in zip padding
    local w = P.torch_load(ckpt_of(model("3d"))).network_weights
    local at = assert(bytes:find(w[P.keys(w)[1]]:bytes(), 1, true)) + 3
    local flipped = bytes:sub(1, at - 1) .. string.char(bytes:byte(at) ~ 0x10) .. bytes:sub(at + 1)
    local fh = assert(io.open(f, "wb"))
    fh:write(flipped)
    fh:close()
    local net = net_for(model("3d"))
    local ok, err = pcall(net.load, net, f)
    assert.is_false(ok)
    assert.matches("CRC", tostring(err), 1, true)
    assert.matches(f, tostring(err), 1, true)
    tmp.remove(d)
  end)

  it("-pretrained_weights semantics: every weight but the segmentation heads", function()
    local m = model("3d")
    local net = net_for(m)
    net:init(7)
    local before = {}
    for i, p in ipairs(net.core:params()) do before[p.name] = net.core:get(i):bytes() end
    net:load_pretrained(ckpt_of(m))
    local tree = P.torch_load(ckpt_of(m))
    local heads = 0
    for i, p in ipairs(net.core:params()) do
      local got = net.core:get(i):bytes()
      if p.name:find(".seg_layers.", 1, true) then
        heads = heads + 1
        assert.are.equal(before[p.name], got, p.name)
      else
        assert.are.equal(P.tensor_data(tree.network_weights[p.name], "float32"):bytes(), got, p.name)
      end
    end
    assert.is_true(heads > 0)
  end)

  it("older plans (UNet_class_name ...) build the same network as nnunetv2 converts them to", function()
    local m = model("3d")
    local plans = json.read(FX .. m.folder .. "/plans.json")
    local c = plans.configurations["3d_fullres"]
    local kw = c.architecture.arch_kwargs
    local old = json.read(FX .. m.folder .. "/plans.json")
    local oc = old.configurations["3d_fullres"]
    oc.architecture = nil
    oc.UNet_class_name = "PlainConvUNet"
    oc.UNet_base_num_features = kw.features_per_stage[1]
    oc.unet_max_num_features = kw.features_per_stage[#kw.features_per_stage]
    oc.n_conv_per_stage_encoder = kw.n_conv_per_stage
    oc.n_conv_per_stage_decoder = kw.n_conv_per_stage_decoder
    oc.pool_op_kernel_sizes = kw.strides
    oc.conv_kernel_sizes = kw.kernel_sizes
    local a = netlib.new(plans, "3d_fullres", 1, 3)
    local b = netlib.new(old, "3d_fullres", 1, 3)
    local pa, pb = a.core:params(), b.core:params()
    assert.are.equal(#pa, #pb)
    for i = 1, #pa do
      assert.are.equal(pa[i].name, pb[i].name)
      assert.are.same(pa[i].shape, pb[i].shape)
    end
  end)
end)

describe("nnU-Net's model zips", function()
  it("installs nnunetv2's export and predicts with it; Lunet's export of it installs to the same files", function()
    local r1, r2 = tmp.dir(), tmp.dir()
    local ms = require "lunet.model_sharing"
    local files = ms.install(FX .. "model_3d.zip", r1)
    assert.is_true(#files >= 5)
    local folder = r1 .. "/Dataset901_Interop/nnUNetTrainer_1epoch__nnUNetPlans__3d_fullres"
    assert.is_true(paths.isfile(folder .. "/fold_0/checkpoint_final.pth"))
    local out = tmp.dir()
    assert.are.equal(0, require("lunet.cli").main({ "predict", "-i", FX .. "raw/imagesTs", "-o", out, "-m", folder,
      "-f", "0", "--disable-tta" }))
    assert.is_true(agreement(out .. "/case_010.nii.gz", FX .. "pred/3d_notta/case_010.nii.gz") >= 0.999)
    -- export from the installed folder with Lunet: the same entries as nnunetv2's zip, and the same bytes
    paths.set_roots { results = r1 }
    local zf = r2 .. "/model.zip"
    local ok, names = pcall(ms.export, { dataset = "901", output = zf, configurations = { "3d_fullres" },
      trainer = "nnUNetTrainer_1epoch", folds = { 0 } })
    paths.set_roots { results = false }
    assert.is_true(ok, tostring(names))
    local theirs = core.zip.open(FX .. "model_3d.zip")
    local want = {}
    for _, n in ipairs(theirs:names()) do if n:sub(-1) ~= "/" then want[#want + 1] = n end end
    table.sort(want)
    table.sort(names)
    assert.are.same(want, names)
    local mine = core.zip.open(zf)
    for _, n in ipairs(want) do assert.are.equal(theirs:read(n), mine:read(n), n) end
    mine:close()
    theirs:close()
    local back = ms.install(zf, r2 .. "/results")
    assert.are.equal(#want, #back)
    -- an entry that would leave the results folder is refused
    local evil = r2 .. "/evil.zip"
    core.zip.write(evil, { { name = "../escape.txt", data = "x" } }, {})
    local ok2, err = pcall(ms.install, evil, r2 .. "/results")
    assert.is_false(ok2)
    assert.matches("outside", tostring(err), 1, true)
    tmp.remove(r1); tmp.remove(r2); tmp.remove(out)
  end)

  it("downloads a zip by URL and installs it (nnUNetv2_download_pretrained_model_by_url); a bad URL is an error", function()
    local r = tmp.dir()
    local ms = require "lunet.model_sharing"
    local zip = paths.join(io.popen("pwd"):read("l"), FX .. "model_3d.zip")
    local files = ms.download_and_install("file://" .. zip, r)
    local want = ms.install(FX .. "model_3d.zip", tmp.dir())
    assert.are.equal(#want, #files)
    assert.is_true(paths.isfile(r .. "/Dataset901_Interop/nnUNetTrainer_1epoch__nnUNetPlans__3d_fullres/fold_0/" ..
      "checkpoint_final.pth"))
    for _, n in ipairs(paths.listdir(r)) do assert.is_nil(n:find("^%.download"), n) end -- the download is removed
    local ok, err = pcall(ms.download_and_install, "file://" .. zip .. ".missing", r)
    assert.is_false(ok)
    assert.matches("could not download file://", tostring(err), 1, true)
    tmp.remove(r)
  end)
end)
