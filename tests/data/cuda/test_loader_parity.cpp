// CUDA batches against the CPU loader: for the same seed, options and epoch,
// every GPU-resident batch and every batch staged through pinned memory is
// identical to the bit, in both layouts, with and without shuffling and
// augmentation.
#include <doctest/doctest.h>

#include <memory>

#include "core/philox.h"
#include "data/loader.h"

namespace lrt::data {

TEST_CASE("CUDA: GPU-resident batches equal the CPU loader's for the same seed") {
  auto split = std::make_shared<CifarSplit>();
  const int64_t n = 300;
  split->images.resize(static_cast<size_t>(n * kImageBytes));
  for (size_t i = 0; i < split->images.size(); ++i)
    split->images[i] = static_cast<uint8_t>(philox::block(77, i / 4).x[i % 4] % 255 + 1);
  for (int64_t i = 0; i < n; ++i) split->labels.push_back((i * 3) % 10);

  for (Layout layout : {Layout::NCHW, Layout::NHWC})
    for (bool shuffle : {false, true})
      for (bool augment : {false, true}) {
        CAPTURE(static_cast<int>(layout));
        CAPTURE(shuffle);
        CAPTURE(augment);
        LoaderOptions o;
        o.batch_size = 128;
        o.shuffle = shuffle;
        o.augment = augment;
        o.layout = layout;
        o.seed = 1234;
        Loader cpu(split, o);
        o.device = Device("cuda:0");
        Loader gpu(split, o);
        o.gpu_resident = false;
        Loader staged(split, o);
        for (int64_t epoch : {0, 5}) {
          cpu.start_epoch(epoch);
          gpu.start_epoch(epoch);
          staged.start_epoch(epoch);
          Batch a, b, c;
          int batches = 0;
          while (cpu.next(a)) {
            REQUIRE(gpu.next(b));
            REQUIRE(staged.next(c));
            CHECK(b.images.device().is_cuda());
            CHECK(c.images.device().is_cuda());
            CHECK(a.images.shape() == b.images.shape());
            CHECK(a.images.to_vector<float>() == b.images.to_vector<float>());
            CHECK(a.labels.to_vector<int64_t>() == b.labels.to_vector<int64_t>());
            CHECK(a.images.to_vector<float>() == c.images.to_vector<float>());
            CHECK(a.labels.to_vector<int64_t>() == c.labels.to_vector<int64_t>());
            ++batches;
          }
          CHECK_FALSE(gpu.next(b));
          CHECK_FALSE(staged.next(c));
          CHECK(batches == 3);
        }
      }
}

}  // namespace lrt::data
