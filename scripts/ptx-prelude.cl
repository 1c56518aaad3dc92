// Definitions of the OpenCL built-ins the GPU kernels call, for scripts/ptx-check.sh only: without libclc
// clang leaves them as external calls that ptxas cannot resolve. They lower to the obvious PTX; what the
// check is for is the kernels' own inline PTX (mma.sync), which ptxas assembles for the named sm.
#define SREG3(name, x, y, z) \
  size_t __attribute__((overloadable)) name(uint d) { return d == 0 ? x() : d == 1 ? y() : z(); }
SREG3(get_group_id, __nvvm_read_ptx_sreg_ctaid_x, __nvvm_read_ptx_sreg_ctaid_y, __nvvm_read_ptx_sreg_ctaid_z)
SREG3(get_local_id, __nvvm_read_ptx_sreg_tid_x, __nvvm_read_ptx_sreg_tid_y, __nvvm_read_ptx_sreg_tid_z)
SREG3(get_local_size, __nvvm_read_ptx_sreg_ntid_x, __nvvm_read_ptx_sreg_ntid_y, __nvvm_read_ptx_sreg_ntid_z)
SREG3(get_num_groups, __nvvm_read_ptx_sreg_nctaid_x, __nvvm_read_ptx_sreg_nctaid_y, __nvvm_read_ptx_sreg_nctaid_z)
size_t __attribute__((overloadable)) get_global_id(uint d) { return get_group_id(d) * get_local_size(d) + get_local_id(d); }
void __attribute__((overloadable)) barrier(cl_mem_fence_flags f) { __nvvm_bar_sync(0); }
float __attribute__((overloadable)) fma(float a, float b, float c) { return __nvvm_fma_rn_f(a, b, c); }
int __attribute__((overloadable)) min(int a, int b) { return a < b ? a : b; }
static float h2f(ushort h) { float f; __asm__("{ .reg .b16 t; mov.b16 t, %1; cvt.f32.f16 %0, t; }" : "=f"(f) : "h"(h)); return f; }
static ushort f2h(float f) { ushort h; __asm__("{ .reg .b16 t; cvt.rn.f16.f32 t, %1; mov.b16 %0, t; }" : "=h"(h) : "f"(f)); return h; }
#define HALF_AS(as) \
  float __attribute__((overloadable)) vload_half(size_t i, const as half *p) { return h2f(((const as ushort *)p)[i]); } \
  void __attribute__((overloadable)) vstore_half_rte(float v, size_t i, as half *p) { ((as ushort *)p)[i] = f2h(v); }
HALF_AS(__global)
HALF_AS(__local)
