# A stand-in for SimpleITK on the GPU machine (whose image lacks it, and whose wheel is too large to carry):
# nnunetv2 imports it at module level for its SimpleITK reader; the device bench reads and writes NIfTI through
# nibabel (dataset.json overwrite_image_reader_writer = NibabelIO), so nothing here is ever called.
def __getattr__(name):
    raise ImportError("SimpleITK is stubbed on this machine (scripts/device-stubs): " + name)
