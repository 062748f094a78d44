// Central-difference gradient check in float64.
#include "core/gradcheck.h"

#include <cmath>
#include <sstream>

#include "core/autograd.h"
#include "core/ops.h"
#include "core/random.h"

namespace lrt {

GradcheckResult gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& fn,
                          const std::vector<Tensor>& inputs, const GradcheckOptions& opts) {
  for (const Tensor& t : inputs) {
    LRT_CHECK(t.dtype() == DType::Float64 && t.device().is_cpu(),
              "gradcheck: inputs must be float64 CPU tensors, got ", t.dtype(), " on ", t.device());
    LRT_CHECK(t.is_leaf(), "gradcheck: inputs must be leaf tensors");
  }
  // Fresh leaves so the caller's .grad() stay untouched.
  std::vector<Tensor> xs;
  for (const Tensor& t : inputs) {
    Tensor c = t.detach().clone();
    if (t.requires_grad()) c.set_requires_grad(true);
    xs.push_back(c);
  }

  Tensor out0;
  {
    NoGradGuard no_grad;
    out0 = fn(xs);
  }
  Generator gen(opts.seed);
  Tensor w = randn(out0.shape(), TensorOptions(DType::Float64), &gen);
  auto loss_value = [&](const std::vector<Tensor>& args) {
    NoGradGuard no_grad;
    return sum(fn(args) * w).item();
  };

  Tensor loss = sum(fn(xs) * w);
  LRT_CHECK(loss.requires_grad(), "gradcheck: the function's output does not depend on any input requiring grad");
  loss.backward();

  GradcheckResult result;
  for (size_t t = 0; t < xs.size(); ++t) {
    if (!xs[t].requires_grad()) continue;
    Tensor g = xs[t].grad();
    std::vector<double> analytic = g.defined() ? g.to_vector<double>() : std::vector<double>(xs[t].numel(), 0.0);
    double* p = xs[t].data<double>();
    for (int64_t i = 0; i < xs[t].numel(); ++i) {
      const double orig = p[i];
      p[i] = orig + opts.eps;
      const double plus = loss_value(xs);
      p[i] = orig - opts.eps;
      const double minus = loss_value(xs);
      p[i] = orig;
      const double numeric = (plus - minus) / (2.0 * opts.eps);
      const double err = std::fabs(numeric - analytic[i]);
      result.max_abs_error = std::max(result.max_abs_error, err);
      if (!(err <= opts.atol + opts.rtol * std::fabs(numeric))) {
        if (result.ok) {
          std::ostringstream os;
          os << "input " << t << " element " << i << ": analytic " << analytic[i] << " vs numeric " << numeric;
          result.message = os.str();
        }
        result.ok = false;
      }
    }
  }
  return result;
}

}  // namespace lrt
