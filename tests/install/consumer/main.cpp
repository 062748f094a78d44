// Uses an installed lrt: a tiny differentiable expression, checked by hand.
#include <cmath>
#include <cstdio>

#include "core/autograd.h"
#include "core/ops.h"
#include "lrt_config.h"

int main() {
  lrt::Tensor x = lrt::from_vector<float>({1.0f, 2.0f, 3.0f}, {3}).set_requires_grad();
  lrt::Tensor y = lrt::sum(x * x);  // 14, gradient 2x
  y.backward();
  const auto g = x.grad().to_vector<float>();
  const bool ok = std::fabs(y.item() - 14.0) < 1e-6 && g[0] == 2.0f && g[1] == 4.0f && g[2] == 6.0f;
  std::printf("consumer: lrt %s (cuda backend %s): sum(x*x) = %g, grad = [%g, %g, %g] %s\n", LRT_VERSION,
              LRT_HAVE_CUDA ? "on" : "off", y.item(), g[0], g[1], g[2], ok ? "OK" : "WRONG");
  return ok ? 0 : 1;
}
