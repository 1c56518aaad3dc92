/* Transposed convolution (kernel == stride): declared with the convolutions in ops/conv.h. */
#ifndef LU_CONVT_H
#define LU_CONVT_H
#include "ops/conv.h"
#endif
