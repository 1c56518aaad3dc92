/* SGD with Nesterov momentum and weight decay (torch.optim.SGD(nesterov=True)) in one kernel. */
#include "cl/program.h"
#include "ops/nn.h"

lu_status lu_sgd_nesterov(lu_tensor *param, const lu_tensor *grad, lu_tensor *momentum, float lr, float mu, float wd) {
  LU_TRY(lu_check_device_tensor(param, LU_F32, "sgd", "param"));
  LU_TRY(lu_check_device_tensor(grad, LU_F32, "sgd", "grad"));
  LU_TRY(lu_check_device_tensor(momentum, LU_F32, "sgd", "momentum"));
  int64_t n = lu_tensor_numel(param);
  if (lu_tensor_numel(grad) != n || lu_tensor_numel(momentum) != n || grad->dev != param->dev ||
      momentum->dev != param->dev) {
    char a[96], b[96], c[96];
    return lu_fail(LU_EARG, "sgd: param %s, grad %s and momentum %s must have the same size on one device",
                   lu_shape_str(param->ndim, param->shape, a, sizeof a), lu_shape_str(grad->ndim, grad->shape, b, sizeof b),
                   lu_shape_str(momentum->ndim, momentum->shape, c, sizeof c));
  }
  cl_kernel k;
  LU_TRY(lu_kernel_get(param->dev, "sgd/sgd.cl", "sgd_nesterov", NULL, &k));
  cl_mem mp = param->buf, mg = grad->buf, mb = momentum->buf;
  cl_ulong nn = (cl_ulong)n;
  LU_CL_CHECK(LU_ARG(k, 0, mp) | LU_ARG(k, 1, mg) | LU_ARG(k, 2, mb) | LU_ARG(k, 3, lr) | LU_ARG(k, 4, mu) |
                  LU_ARG(k, 5, wd) | LU_ARG(k, 6, nn),
              "sgd args");
  size_t g = lu_global_1d((size_t)n, 256), l = 256;
  return lu_launch(param->dev, k, 1, &g, n < 256 ? NULL : &l, "sgd");
}
