// Nearest-exact downsampling of segmentation targets for deep supervision (torch 'nearest-exact'):
//   src = min((long)floor((dst + 0.5f) * scale), in - 1), scale = (float)in / (float)out per axis.
// T is the element type (int, float, uchar, short), set with -DT=...
#ifndef T
#define T int
#endif

static inline long ne_src(long d, long nin, float sc) {
  long s = (long)floor(((float)d + 0.5f) * sc);
  return s < nin - 1 ? s : nin - 1;
}

// global: (round_up(oX), oY, NC * oZ)
__kernel void ds_nearest(__global T *out, __global const T *in, const long iZ, const long iY, const long iX,
                         const long oZ, const long oY, const long oX, const float sz, const float sy,
                         const float sx) {
  long x = get_global_id(0), y = get_global_id(1), nz = get_global_id(2);
  if (x >= oX) return;
  long z = nz % oZ, nc = nz / oZ;
  long zs = ne_src(z, iZ, sz), ys = ne_src(y, iY, sy), xs = ne_src(x, iX, sx);
  out[((nc * oZ + z) * oY + y) * oX + x] = in[((nc * iZ + zs) * iY + ys) * iX + xs];
}
