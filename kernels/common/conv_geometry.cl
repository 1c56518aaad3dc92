// Convolution geometry as build options, with nnU-Net's 3x3x3 / stride 1 / pad 1 as the defaults: kernel
// size KZ KY KX, stride SZ SY SX, padding PZ PY PX; KV taps. Included by conv/conv.cl and, through
// common/conv_vec.cl, by the direct kernels.
#ifndef KZ
#define KZ 3
#endif
#ifndef KY
#define KY 3
#endif
#ifndef KX
#define KX 3
#endif
#ifndef SZ
#define SZ 1
#endif
#ifndef SY
#define SY 1
#endif
#ifndef SX
#define SX 1
#endif
#ifndef PZ
#define PZ 1
#endif
#ifndef PY
#define PY 1
#endif
#ifndef PX
#define PX 1
#endif
#define KV (KZ * KY * KX)
