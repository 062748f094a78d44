// Per-element optimizer updates, written once for the CPU loop and the fused
// CUDA kernel, following torch.optim's formulas and their order of operations
// (lerp for the first moment, addcmul's (value * g) * g, lr / bc1 in double)
// so results can be compared with PyTorch; the learning rate and decay are
// stored in float32 per tensor, where PyTorch keeps Python doubles. Every product and sum is rounded on its own
// (math::mul_rn / add_rn), so CPU and CUDA agree to the last bit. Hyper-
// parameters arrive per tensor with the learning rate already scaled by the
// schedule, the group multiplier and lr_mult, and bias corrections computed on
// the host for the tensor's step.
#pragma once

#include "core/hd.h"
#include "kernels/math.h"

namespace lrt::optim {

// Differences such as 1 - beta2 and 1 - lr * wd are computed on the host in
// double, as torch.optim does in Python: in float, 1 - 0.999f is off by 1e-5.
struct AdamArgs {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay;
  float decay_factor;           // AdamW: 1 - lr * wd
  float step_size;              // lr / (1 - beta1^t)
  float bias_correction2_sqrt;  // sqrt(1 - beta2^t)
  bool decoupled;               // AdamW: p *= 1 - lr * wd before the Adam step
  bool amsgrad;
};

// torch.optim.Adam / AdamW (single-tensor path): L2 decay adds wd * p to the
// gradient; m.lerp_(g, 1 - beta1); v = v * beta2 + ((1 - beta2) * g) * g;
// denom = sqrt(v or max_v) / sqrt(bc2) + eps; p -= (lr / bc1) * m / denom.
LRT_HD void adam_update(float& p, float g, float& m, float& v, float& vmax, const AdamArgs& a) {
  using math::add_rn;
  using math::mul_rn;
  if (a.weight_decay != 0.0f) {
    if (a.decoupled) p = mul_rn(p, a.decay_factor);
    else g = add_rn(g, mul_rn(p, a.weight_decay));
  }
  // torch's lerp: start + w * (end - start) for w < 0.5, else end - (end - start) * (1 - w).
  m = a.one_minus_beta1 < 0.5f ? add_rn(m, mul_rn(a.one_minus_beta1, g - m)) : g - mul_rn(g - m, a.beta1);
  v = add_rn(mul_rn(v, a.beta2), mul_rn(mul_rn(a.one_minus_beta2, g), g));
  float second = v;
  if (a.amsgrad) {
    vmax = vmax > v ? vmax : v;
    second = vmax;
  }
  const float denom = add_rn(math::sqrt(second) / a.bias_correction2_sqrt, a.eps);
  p = add_rn(p, mul_rn(-a.step_size, m / denom));
}

struct SgdArgs {
  float lr, momentum, weight_decay;
  bool nesterov;
  bool first;  // no momentum buffer yet: it starts as the gradient
};

// torch.optim.SGD with dampening 0: g += wd * p; buf = g (first step) or
// buf * momentum + g; g = g + momentum * buf (Nesterov) or buf; p -= lr * g.
LRT_HD void sgd_update(float& p, float g, float& buf, const SgdArgs& a) {
  using math::add_rn;
  using math::mul_rn;
  if (a.weight_decay != 0.0f) g = add_rn(g, mul_rn(p, a.weight_decay));
  if (a.momentum != 0.0f) {
    buf = a.first ? g : add_rn(mul_rn(buf, a.momentum), g);
    g = a.nesterov ? add_rn(g, mul_rn(buf, a.momentum)) : buf;
  }
  p = add_rn(p, mul_rn(g, -a.lr));
}

}  // namespace lrt::optim
