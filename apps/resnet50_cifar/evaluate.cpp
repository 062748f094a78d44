// eval and predict over the test split of --data.
#include "apps/resnet50_cifar/evaluate.h"

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "apps/resnet50_cifar/files.h"
#include "apps/resnet50_cifar/setup.h"
#include "apps/resnet50_cifar/train.h"
#include "core/error.h"
#include "core/ops.h"

namespace lrt::app {

namespace {

void check_eval_data(const RunOptions& o) {
  LRT_CHECK(!o.data.empty(), "--data is required (the folder with the CIFAR binary files)");
}

data::CifarDataset load_test_only(RunOptions o) {
  o.train_subset = 1;  // only the test split is used
  data::CifarDataset ds = load_dataset(o);
  LRT_CHECK(ds.test.size() > 0, "--data: no test images");
  return ds;
}

double accuracy_of(const Tensor& probs, const Tensor& labels) {
  const std::vector<int64_t> pred = argmax(probs, 1).to_vector<int64_t>();
  const std::vector<int64_t> truth = labels.to_vector<int64_t>();
  int64_t n = 0;
  for (size_t i = 0; i < pred.size(); ++i) n += pred[i] == truth[i];
  return pred.empty() ? 0.0 : static_cast<double>(n) / static_cast<double>(pred.size());
}

}  // namespace

std::vector<std::string> split_list(const std::string& spec, const char* flag) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= spec.size()) {
    const size_t comma = spec.find(',', start);
    const std::string item = spec.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    LRT_CHECK(!item.empty(), flag, ": empty item in '", spec, "'");
    out.push_back(item);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

int run_eval(RunOptions o, const std::string& weights) {
  check_eval_data(o);
  const std::vector<std::string> files = split_list(weights, "--weights");
  for (const std::string& f : files) LRT_CHECK(std::filesystem::is_regular_file(f), "--weights: '", f, "': no such file");
  const Device dev = resolve_device(o.device);
  const bool graph = use_test_graph(o, dev);
  const data::CifarDataset ds = load_test_only(o);
  data::Loader loader(std::make_shared<const data::CifarSplit>(ds.test), test_loader_options(o, dev));
  Tensor sum_probs, labels;
  for (const std::string& f : files) {
    auto model = load_model(o, f, ds.num_classes, dev);
    const EvalResult r = evaluate(*model, loader, /*keep_probs=*/true, graph);
    std::printf("%s: accuracy %.2f%%, loss %.4f (%lld images)\n", f.c_str(), 100.0 * r.accuracy, r.loss,
                static_cast<long long>(r.count));
    sum_probs = sum_probs.defined() ? sum_probs + r.probs : r.probs;
    labels = r.labels;
  }
  if (files.size() > 1) {
    const Tensor mean_probs = sum_probs / static_cast<double>(files.size());
    std::printf("ensemble of %zu (averaged softmax): accuracy %.2f%%\n", files.size(),
                100.0 * accuracy_of(mean_probs, labels));
  }
  return 0;
}

int run_predict(RunOptions o, const std::string& weights, const std::string& out_csv) {
  check_eval_data(o);
  LRT_CHECK(std::filesystem::is_regular_file(weights), "--weights: '", weights, "': no such file");
  LRT_CHECK(!out_csv.empty(), "--out is required");
  check_writable_file(out_csv, "--out");
  const Device dev = resolve_device(o.device);
  const bool graph = use_test_graph(o, dev);
  const data::CifarDataset ds = load_test_only(o);
  data::Loader loader(std::make_shared<const data::CifarSplit>(ds.test), test_loader_options(o, dev));
  auto model = load_model(o, weights, ds.num_classes, dev);
  const EvalResult r = evaluate(*model, loader, /*keep_probs=*/true, graph);
  const std::vector<float> p = r.probs.to_vector<float>();
  const std::vector<int64_t> y = r.labels.to_vector<int64_t>();
  const std::vector<int64_t> pred = argmax(r.probs, 1).to_vector<int64_t>();
  const int64_t classes = r.probs.size(1);
  write_text_atomically(out_csv, "--out", [&](std::ostream& csv) {
    csv << "index,label,pred";
    for (int64_t c = 0; c < classes; ++c) csv << ",p" << c;
    csv << "\n";
    char buf[32];
    for (int64_t i = 0; i < r.count; ++i) {
      csv << i << "," << y[static_cast<size_t>(i)] << "," << pred[static_cast<size_t>(i)];
      for (int64_t c = 0; c < classes; ++c) {
        std::snprintf(buf, sizeof buf, ",%.6g", static_cast<double>(p[static_cast<size_t>(i * classes + c)]));
        csv << buf;
      }
      csv << "\n";
    }
  });
  std::printf("wrote probabilities of %lld test images to %s (accuracy %.2f%%)\n", static_cast<long long>(r.count),
              out_csv.c_str(), 100.0 * r.accuracy);
  return 0;
}

}  // namespace lrt::app
