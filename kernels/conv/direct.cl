// Every direct convolution kernel in one program. This file exists only until the host code
// (csrc/ops/conv.c, convT.c: DIRECT_FILE) names the split files; then it goes. Each file includes
// common/conv_vec.cl, which the loader inserts once (csrc/cl/program.c).
#include "conv/pack.cl"
#include "conv/fwd.cl"
#include "conv/convT.cl"
#include "conv/dgrad.cl"
#include "conv/wgrad.cl"
