-- lunet.io: file formats (image: NIfTI/TIFF/PNG, store: the preprocessed case store, npy: numpy
-- .npy/.npz), loaded on first use.
return require("lunet.util.lazy").package({}, "lunet.io")
