// Activation storage: -DHALF=1 keeps activations and their gradients as 16-bit floats in memory
// (vload_half / vstore_half_rte: core OpenCL, no cl_khr_fp16 needed) while every kernel computes in float;
// otherwise float. ACT is the pointer's element type. LDA/STA move one value at index i, LDA8/STA8 eight
// at index 8 i (vload8's convention). Rounding to nearest even, as torch's autocast casts.
#ifndef HALF
#define HALF 0
#endif
#if HALF
#define ACT half
#define LDA(p, i) vload_half((i), (p))
#define STA(v, p, i) vstore_half_rte((v), (i), (p))
#define LDA8(i, p) vload_half8((i), (p))
#define STA8(v, i, p) vstore_half8_rte((v), (i), (p))
#else
#define ACT float
#define LDA(p, i) ((p)[i])
#define STA(v, p, i) ((p)[i] = (v))
#define LDA8(i, p) vload8((i), (p))
#define STA8(v, i, p) vstore8((v), (i), (p))
#endif
