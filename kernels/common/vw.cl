// Per-voxel vectors for the loss and softmax kernels: VW voxels a work-item (-DVW=1, or 8 on CPU devices
// with S % 8 == 0, so that PoCL emits vector exp/log), as the type vf. LOADF / STOREF move VW floats at
// p + i, LOADT reads VW targets (int or float) as floats, HSUM adds a vf's lanes, VB broadcasts a
// scalar, ONE_IF turns a vf comparison into 0 / 1.
#ifndef VW
#define VW 1
#endif

#if VW == 1
typedef float vf;
#define LOADF(p, i) ((p)[i])
#define STOREF(v, p, i) ((p)[i] = (v))
#define LOADT(p, i) ((float)(p)[i])
#define HSUM(v) (v)
#elif VW == 8
typedef float8 vf;
#define LOADF(p, i) vload8(0, (p) + (i))
#define STOREF(v, p, i) vstore8((v), 0, (p) + (i))
#define LOADT(p, i) convert_float8(vload8(0, (p) + (i)))
#define HSUM(v) hsum8(v)
static inline float hsum8(float8 v) {
  float4 a = v.lo + v.hi;
  float2 b = a.lo + a.hi;
  return b.x + b.y;
}
#else
#error "VW must be 1 or 8"
#endif
#define VB(x) ((vf)(x))
#define ONE_IF(cond) select(VB(0.0f), VB(1.0f), cond)
