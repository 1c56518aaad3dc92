// torch.optim.SGD(momentum=mu, nesterov=True, weight_decay=wd, dampening=0), one element per item:
//   g = grad + wd * p;  buf = mu * buf + g;  p -= lr * (g + mu * buf)
__kernel void sgd_nesterov(__global float *p, __global const float *grad, __global float *buf, const float lr,
                           const float mu, const float wd, const ulong n) {
  size_t i = get_global_id(0);
  if (i < n) {
    float pv = p[i];
    float g = grad[i] + wd * pv;
    float b = mu * buf[i] + g;
    buf[i] = b;
    p[i] = pv - lr * (g + mu * b);
  }
}
