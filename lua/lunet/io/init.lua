-- lunet.io: file formats (image: NIfTI/TIFF/PNG, store: the preprocessed case store, npy: numpy
-- .npy/.npz, b2nd: nnunetv2's Blosc2 .b2nd arrays, torch: PyTorch checkpoints), loaded on first use.
return require("lunet.util.lazy").package({}, "lunet.io")
