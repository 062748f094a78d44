// The remaining CUDA kernels that run without a library (cuDNN and cuBLAS
// calls are not emulated) on the emulated grid (emulated/grid.h), against
// their CPU twins: log_softmax and the cross-entropy loss with its bad-label
// row (kernels/cuda/softmax.cu), max and average pooling
// (kernels/cuda/pool.cu), the Philox fills (kernels/cuda/random.cu) and the
// GPU-resident batch with its crops, flips and normalisation
// (data/cuda/augment.cu). Each computes an element with the CPU's
// operations, so results are the CPU's bits, except where the softmax kernels
// sum a row in double in another order (warp lanes, then a butterfly): one
// rounding of the result, 1e-6 norm-wise for float32, 1e-12 for float64.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/ops.h"
#include "core/philox.h"
#include "data/augment.h"
#include "data/cifar.h"
#include "data/loader.h"
#include "emulated/checks.h"
#include "emulated/grid.h"
#include "kernels/kernels.h"
#include "kernels/pool.h"
#include "kernels/softmax.h"
#include "testing.h"

namespace lrt {

namespace {

namespace kb = kernels;
using emulated_checks::check_close;
using emulated_checks::check_same;
using emulated_checks::poisoned;
using testing::host;

// The softmax kernels' tolerance (above).
double softmax_tolerance(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-12; }

}  // namespace

TEST_CASE("emulated grid: CUDA log_softmax and cross-entropy agree with the CPU; a bad label NaNs its row") {
  const emulated_grid::ScopedSmCount device(4);
  uint64_t seed = 100;
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Shape& s : {Shape{1, 1}, Shape{7, 10}, Shape{300, 10}, Shape{3, 1000}}) {
      CAPTURE(dt);
      CAPTURE(to_string(s));
      const int64_t rows = s[0], classes = s[1];
      const Tensor x = testing::normal(s, dt, ++seed) * 3.0, gy = testing::normal(s, dt, ++seed);
      Tensor y = empty(s, dt), y_e = poisoned(s, dt);
      kb::cpu::log_softmax_forward(x, y);
      kb::emulated::log_softmax_forward(x, y_e);
      check_close(y_e, y, softmax_tolerance(dt), "log_softmax");
      Tensor gx = empty(s, dt), gx_e = poisoned(s, dt);
      kb::cpu::log_softmax_backward(y, gy, gx);
      kb::emulated::log_softmax_backward(y, gy, gx_e);
      check_close(gx_e, gx, softmax_tolerance(dt), "log_softmax backward");

      std::vector<int64_t> lab(static_cast<size_t>(rows));
      for (int64_t i = 0; i < rows; ++i) lab[static_cast<size_t>(i)] = (i * 7 + 3) % classes;
      const Tensor labels = from_vector<int64_t>(lab, {rows}, DType::Int64);
      Tensor loss = empty({rows}, dt), lse = empty({rows, 2}, DType::Float64);
      Tensor loss_e = poisoned({rows}, dt), lse_e = poisoned({rows, 2}, DType::Float64);
      kb::cpu::cross_entropy_forward(x, labels, loss, lse, true);
      kb::emulated::cross_entropy_forward(x, labels, loss_e, lse_e, true);
      check_close(loss_e, loss, softmax_tolerance(dt), "loss");
      check_close(lse_e, lse, softmax_tolerance(dt), "lse");
      const Tensor gloss = testing::normal({rows}, dt, ++seed);
      Tensor gl = empty(s, dt), gl_e = poisoned(s, dt);
      kb::cpu::cross_entropy_backward(x, labels, lse, gloss, gl);
      kb::emulated::cross_entropy_backward(x, labels, lse, gloss, gl_e);
      check_close(gl_e, gl, softmax_tolerance(dt), "cross-entropy backward");

      if (rows > 1) {
        // A label out of range in two rows: the check names the first;
        // without the check those rows' losses are NaN and the others those
        // of the good labels.
        std::vector<int64_t> bad = lab;
        bad[static_cast<size_t>(rows - 1)] = classes;
        bad[static_cast<size_t>(rows / 2)] = -1;
        const Tensor bad_labels = from_vector<int64_t>(bad, {rows}, DType::Int64);
        Tensor loss_b = poisoned({rows}, dt), lse_b = poisoned({rows, 2}, DType::Float64);
        const std::string msg =
            testing::error_of([&] { kb::emulated::cross_entropy_forward(x, bad_labels, loss_b, lse_b, true); });
        CHECK(msg.find("at row " + std::to_string(rows / 2)) != std::string::npos);
        Tensor loss_u = poisoned({rows}, dt), lse_u = poisoned({rows, 2}, DType::Float64);
        kb::emulated::cross_entropy_forward(x, bad_labels, loss_u, lse_u, false);
        const std::vector<double> lu = host(loss_u), lw = host(loss_e);
        for (int64_t i = 0; i < rows; ++i) {
          CAPTURE(i);
          if (i == rows / 2 || i == rows - 1)
            CHECK(std::isnan(lu[static_cast<size_t>(i)]));
          else
            CHECK(lu[static_cast<size_t>(i)] == lw[static_cast<size_t>(i)]);
        }
      }
    }
}

TEST_CASE("emulated grid: CUDA max and average pooling, forward and backward, give the CPU's bits") {
  const emulated_grid::ScopedSmCount device(4);
  uint64_t seed = 200;
  struct Case {
    Shape x;
    int64_t kernel, stride, pad;
  };
  const Case cases[] = {{{2, 3, 8, 8}, 3, 2, 1}, {{1, 4, 7, 9}, 2, 2, 0}, {{3, 2, 5, 5}, 3, 1, 1}, {{2, 64, 16, 16}, 3, 2, 1}};
  for (DType dt : {DType::Float32, DType::Float64})
    for (const Case& c : cases) {
      CAPTURE(dt);
      CAPTURE(to_string(c.x));
      const kb::PoolGeometry g = kb::make_pool_geometry(c.x, c.kernel, c.stride, c.pad);
      const Shape ys{c.x[0], c.x[1], g.p, g.q};
      const Tensor x = testing::normal(c.x, dt, ++seed), gy = testing::normal(ys, dt, ++seed);
      Tensor y = empty(ys, dt), idx = empty(ys, DType::Int64), y_e = poisoned(ys, dt), idx_e = poisoned(ys, DType::Int64);
      kb::cpu::max_pool2d_forward(x, g, y, idx);
      kb::emulated::max_pool2d_forward(x, g, y_e, idx_e);
      check_same(y_e, y, "max pool");
      check_same(idx_e, idx, "max pool indices");
      Tensor gx = empty(c.x, dt), gx_e = poisoned(c.x, dt);
      kb::cpu::max_pool2d_backward(gy, idx, g, gx);
      kb::emulated::max_pool2d_backward(gy, idx, g, gx_e);
      check_same(gx_e, gx, "max pool backward");
      Tensor a = empty(ys, dt), a_e = poisoned(ys, dt);
      kb::cpu::avg_pool2d_forward(x, g, a);
      kb::emulated::avg_pool2d_forward(x, g, a_e);
      check_same(a_e, a, "avg pool");
      Tensor ga = empty(c.x, dt), ga_e = poisoned(c.x, dt);
      kb::cpu::avg_pool2d_backward(gy, g, ga);
      kb::emulated::avg_pool2d_backward(gy, g, ga_e);
      check_same(ga_e, ga, "avg pool backward");
    }
}

TEST_CASE("emulated grid: CUDA Philox fills give the CPU's values for the same seed and offset") {
  const emulated_grid::ScopedSmCount device(4);
  for (DType dt : {DType::Float32, DType::Float64})
    for (int64_t n : {int64_t(1), int64_t(5), int64_t(70001)})
      for (kb::RandomKind kind : {kb::RandomKind::Uniform, kb::RandomKind::Normal}) {
        CAPTURE(dt);
        CAPTURE(n);
        CAPTURE(kind == kb::RandomKind::Normal);
        Tensor want = empty({n}, dt), got = poisoned({n}, dt);
        kb::cpu::fill_random(kind, want, 4242, 13);
        kb::emulated::fill_random(kind, got, 4242, 13);
        check_same(got, want, "fill_random");
      }
}

TEST_CASE("emulated grid: the GPU-resident batch equals the CPU loader's, crops, flips and both layouts") {
  const emulated_grid::ScopedSmCount device(4);
  data::CifarSplit split;
  const int64_t n = 40;
  split.images.resize(static_cast<size_t>(n * data::kImageBytes));
  for (size_t i = 0; i < split.images.size(); ++i)
    split.images[i] = static_cast<uint8_t>(philox::block(77, i / 4).x[i % 4] % 255 + 1);
  for (int64_t i = 0; i < n; ++i) split.labels.push_back((i * 3) % 10);
  std::vector<int64_t> image_bytes(split.images.begin(), split.images.end());
  const Tensor images = from_vector<int64_t>(image_bytes, {n, data::kImageBytes}, DType::UInt8);
  const Tensor labels = from_vector<int64_t>(split.labels, {n}, DType::Int64);
  const data::Normalization norm = data::make_normalization(data::Normalize::MeanStd);
  for (data::Layout layout : {data::Layout::NCHW, data::Layout::NHWC})
    for (bool augment : {false, true})
      for (uint64_t epoch : {0, 3}) {
        CAPTURE(static_cast<int>(layout));
        CAPTURE(augment);
        CAPTURE(epoch);
        const std::vector<int64_t> order = data::epoch_order(n, 99, epoch, true);
        const Tensor order_t = from_vector<int64_t>(order, {n}, DType::Int64);
        const int64_t first = 5, count = 17;
        std::vector<float> want_images(static_cast<size_t>(count * data::kImageBytes));
        std::vector<int64_t> want_labels(static_cast<size_t>(count));
        data::fill_batch_cpu(split, order.data(), first, count, 99, epoch, augment, norm, layout, want_images.data(),
                             want_labels.data());
        const Shape shape = layout == data::Layout::NCHW ? Shape{count, 3, 32, 32} : Shape{count, 32, 32, 3};
        Tensor got_images = poisoned(shape, DType::Float32), got_labels = poisoned({count}, DType::Int64);
        data::detail::fill_batch_emulated(images, labels, order_t, first, count, 99, epoch, augment, norm, layout,
                                          got_images, got_labels);
        CHECK(got_images.to_vector<float>() == want_images);
        CHECK(got_labels.to_vector<int64_t>() == want_labels);
      }
}

}  // namespace lrt
