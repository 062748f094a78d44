// train and lr-find. A training step: forward, cross-entropy, backward, a
// finiteness check of the loss and the gradients, then the optimizer step at
// the schedule's rate. Position and RNG state live in TrainState, so a
// checkpoint taken after any step resumes bit-identically on the CPU.
//
// The host does not wait for the device inside a step: the loss, the count
// of correct predictions and the finiteness flag stay on the device and are
// read back every --sync-every steps (and before anything that needs them:
// a cycle end, an epoch end, a signal, a checkpoint), then logged step by
// step as if read at once. The optimizer reads a sticky device flag set by
// any non-finite step since the last read-back and leaves the parameters and
// its moments alone from that step on, so the run stops at that step with
// them as they were before it (BN running statistics and RNG positions move
// on; nothing is saved on that exit). --skip-nonfinite must decide each step
// before the optimizer runs, so it reads back every step.
//
// --cuda-graph (CUDA) replays the whole step from a captured CUDA graph, one
// a batch size (GraphedStep below), with the same outcome tensors and flag.
//
// Signals: SIGINT/SIGTERM set a flag the loop reads after each step; the run
// then saves a checkpoint (with --checkpoint-dir), prints the command that
// resumes it and exits 130 (143 for SIGTERM). A second signal ends the
// process at once (an atomic save can never be left half-written).
#include "apps/resnet50_cifar/train.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "apps/json_number.h"
#include "apps/resnet50_cifar/checkpoint.h"
#include "apps/resnet50_cifar/files.h"
#include "apps/resnet50_cifar/graph_plan.h"
#include "apps/resnet50_cifar/progress.h"
#include "apps/resnet50_cifar/setup.h"
#include "core/allocator.h"
#include "core/autograd.h"
#include "core/cuda_graph.h"
#include "core/error.h"
#include "core/ops.h"
#include "core/stream_marks.h"
#include "kernels/kernels.h"
#include "layers/functional.h"
#include "optim/lr_find.h"

namespace lrt::app {

namespace {

namespace fs = std::filesystem;

// ------------------------------------------------------------------ signals --

std::atomic<int> g_signal{0};

extern "C" void on_signal(int sig) {
  if (g_signal.exchange(sig) != 0) _exit(128 + sig);
}

class SignalScope {
 public:
  SignalScope() {
    g_signal = 0;
    struct sigaction sa {};
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int_);
    sigaction(SIGTERM, &sa, &old_term_);
  }
  ~SignalScope() {
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalScope(const SignalScope&) = delete;
  SignalScope& operator=(const SignalScope&) = delete;

 private:
  struct sigaction old_int_ {}, old_term_ {};
};

// --------------------------------------------------------------------- JSON --

std::string num(double v) { return json_number(v); }

class JsonLog {
 public:
  JsonLog() = default;
  void open(const std::string& path, bool append) {
    if (path.empty()) return;
    f_ = std::fopen(path.c_str(), append ? "a" : "w");
    LRT_CHECK(f_ != nullptr, "--log: cannot open '", path, "' for writing: ", std::strerror(errno));
    path_ = path;
  }
  ~JsonLog() {
    if (f_) std::fclose(f_);
  }
  JsonLog(const JsonLog&) = delete;
  JsonLog& operator=(const JsonLog&) = delete;
  void write(const std::string& line) {
    if (!f_) return;
    if (std::fputs(line.c_str(), f_) < 0 || std::fputc('\n', f_) < 0 || std::fflush(f_) != 0)
      LRT_THROW("--log: writing '", path_, "' failed: ", std::strerror(errno));
  }

 private:
  std::FILE* f_ = nullptr;
  std::string path_;
};

// ---------------------------------------------------------------- the step --

// What one step leaves on the model's device, 0-d float32 tensors: the
// loss, the number of correct predictions, and 1 when the loss or any
// gradient is NaN or infinite (else 0).
struct StepTensors {
  Tensor loss, correct, bad;
};

// The same, read back to the host (waits for the device).
struct StepOutcome {
  double loss = 0.0;
  int64_t correct = 0;
  bool finite = true;
};

// The number of rows whose largest logit is the label's, as a 0-d float32
// tensor on the logits' device (exact below 2^24).
Tensor count_correct(const Tensor& logits, const Tensor& labels) {
  return sum(eq(argmax(logits, 1).to(DType::Float32), labels.to(DType::Float32)));
}

StepOutcome read_outcome(const StepTensors& t) {
  StepOutcome out;
  out.loss = t.loss.item();
  out.correct = static_cast<int64_t>(t.correct.item());
  out.finite = t.bad.item() == 0.0;
  return out;
}

// The outcomes of several steps, in order, read back in one transfer: the
// values are gathered on the device first (copies queued behind the steps),
// so the host waits for the device once, not three times a step, each wait
// leaving the device idle.
std::vector<StepOutcome> read_outcomes(const std::vector<const StepTensors*>& steps) {
  std::vector<StepOutcome> out(steps.size());
  if (steps.empty()) return out;
  const int64_t n = static_cast<int64_t>(steps.size());
  const Tensor gathered = empty({n, 3}, TensorOptions(DType::Float64).with_device(steps[0]->loss.device()));
  {
    NoGradGuard no_grad;
    for (int64_t i = 0; i < n; ++i) {
      const StepTensors& t = *steps[static_cast<size_t>(i)];
      const Tensor row = gathered.slice(0, i, i + 1).reshape({3});
      row.slice(0, 0, 1).copy_(t.loss.reshape({1}));
      row.slice(0, 1, 2).copy_(t.correct.reshape({1}));
      row.slice(0, 2, 3).copy_(t.bad.reshape({1}));
    }
  }
  const std::vector<double> v = gathered.to(kCPU).to_vector<double>();
  for (size_t i = 0; i < steps.size(); ++i) {
    out[i].loss = v[3 * i];
    out[i].correct = static_cast<int64_t>(v[3 * i + 1]);
    out[i].finite = v[3 * i + 2] == 0.0;
  }
  return out;
}

// Forward and backward of one batch; the gradients are left in the model.
// Nothing here waits for the device.
StepTensors forward_backward(ResNet50& model, const data::Batch& b) {
  model.zero_grad();
  const Tensor logits = model.forward(b.images);
  // The labels were range-checked when the dataset was read (data/cifar.cpp),
  // so the loss skips its check, which on CUDA would wait for the device.
  const Tensor loss = cross_entropy(logits, b.labels, /*check_labels=*/false);
  loss.backward();
  NoGradGuard no_grad;
  StepTensors t;
  t.loss = loss.detach();
  t.correct = count_correct(logits.detach(), b.labels);
  // One pass over the loss and every gradient (one launch on CUDA).
  std::vector<Tensor> checked{t.loss};
  for (const NamedParameter& p : model.named_parameters())
    if (p.tensor.grad().defined()) checked.push_back(p.tensor.grad());
  t.bad = nonfinite_flag(checked);
  return t;
}

// The outcome tensors of a step, as copies: a graph's outputs are
// overwritten by its next replay.
StepTensors copy_of(const StepTensors& t) { return {t.loss.clone(), t.correct.clone(), t.bad.clone()}; }

// What GraphedStep and GraphedEval share: a graph for each batch size
// (GraphPlan says which batches run eagerly, are captured or replay), with
// the fixed tensors its capture read its batch from and wrote its outcome to.
template <class Outputs>
class GraphSet {
 public:
  struct Slot {
    Tensor images, labels;  // what the capture read; a replay's batch is copied in first
    Outputs out;            // what the capture wrote; the next replay overwrites it
    Tensor probs;           // likewise (GraphedEval with probabilities only)
    CudaGraph graph;        // last: destroyed first, after its last replay
  };

  // How to run b. For Replay, *slot is its size's slot with b's values
  // copied into its images and labels; for Capture, a new slot whose images
  // and labels are copies of b: the caller captures into it, then reports
  // how that went (captured()).
  GraphPlan::Use use_for(const data::Batch& b, Slot*& slot) {
    const int64_t n = b.images.size(0);
    const GraphPlan::Use use = plan_.use_for(n);
    slot = nullptr;
    if (use == GraphPlan::Use::Replay) {
      slot = slots_.at(n).get();
      slot->images.copy_(b.images);
      slot->labels.copy_(b.labels);
    } else if (use == GraphPlan::Use::Capture) {
      auto fresh = std::make_unique<Slot>();
      fresh->images = b.images.contiguous().clone();
      fresh->labels = b.labels.contiguous().clone();
      slot = fresh.get();
      capturing_ = n;
      slots_[n] = std::move(fresh);
    }
    return use;
  }

  // How the capture use_for() asked for went; a failed one's slot is gone.
  void captured(bool ok) {
    plan_.captured(capturing_, ok);
    if (!ok) slots_.erase(capturing_);
  }

 private:
  GraphPlan plan_;
  std::map<int64_t, std::unique_ptr<Slot>> slots_;  // by batch size
  int64_t capturing_ = 0;
};

// --cuda-graph: the whole training step (forward, loss, backward, the
// finiteness flag, the optimizer update) captured as a CUDA graph and
// replayed for later batches of the same size: one graph for the epoch's
// full batches, one for its last, smaller batch (GraphPlan: the first batch
// of a size runs eagerly, the second is captured). Each replay copies the
// batch into the tensors the capture read, lets the optimizer queue that
// step's learning rates and bias corrections (Optimizer::prepare; the
// captured update reads them from device memory) and advances BatchNorm's
// host-side batch counters. If a capture fails, the run says why on stderr,
// runs that step eagerly and captures nothing more.
class GraphedStep {
 public:
  GraphedStep(ResNet50& model, optim::Optimizer& opt, Device dev, Tensor bad)
      : model_(model), opt_(opt), dev_(dev), bad_(std::move(bad)) {}

  // Runs the training step of b at rate lr and returns its outcome, or
  // returns false and does nothing where the caller must run it eagerly.
  bool run(const data::Batch& b, double lr, StepTensors& out) {
    Slot* s = nullptr;
    last_ = graphs_.use_for(b, s);
    switch (last_) {
      case GraphPlan::Use::Eager:
        return false;
      case GraphPlan::Use::Replay:
        opt_.prepare(lr);
        s->graph.replay();
        model_.replayed_forward();
        out = copy_of(s->out);
        ++steps_;
        return true;
      case GraphPlan::Use::Capture:
        if (capture(*s, b, lr)) {
          out = copy_of(s->out);
          graphs_.captured(true);
        } else {
          graphs_.captured(false);  // s is gone
          out = eager_after_failed_capture(b);
        }
        return true;
    }
    return false;
  }

  // Steps run by a graph (the captured ones and every replay).
  int64_t steps() const { return steps_; }
  // How the last run() went: Capture also where the capture failed and the
  // step then ran eagerly.
  GraphPlan::Use last() const { return last_; }

 private:
  using Slot = GraphSet<StepTensors>::Slot;

  // Captures the step of b (read from s's images and labels) into s, then
  // runs it; false where the capture failed (then nothing ran).
  bool capture(Slot& s, const data::Batch& b, double lr) {
    // Host buffers (BatchNorm's counters) as they were, in case the capture
    // fails after the forward has advanced them.
    std::vector<std::pair<Tensor, Tensor>> host_buffers;
    for (const auto& [name, t] : model_.named_buffers())
      if (t.device().is_cpu()) host_buffers.emplace_back(t, t.clone());
    opt_.prepare(lr);
    try {
      s.graph.capture(dev_.index, [&] {
        s.out = forward_backward(model_, data::Batch{s.images, s.labels, b.index});
        bad_.copy_(maximum(bad_, s.out.bad));
        opt_.apply(bad_);
      });
    } catch (const Error& e) {
      std::fprintf(stderr, "resnet50_cifar: --cuda-graph: %s; training goes on without a graph for batches of %lld\n",
                   e.message().c_str(), static_cast<long long>(b.images.size(0)));
      for (auto& [buffer, saved] : host_buffers) buffer.copy_(saved);
      return false;
    }
    s.graph.replay();  // the captured step itself
    ++steps_;
    return true;
  }

  // The step whose capture failed, eagerly; prepare() has already advanced
  // the optimizer's step counts.
  StepTensors eager_after_failed_capture(const data::Batch& b) {
    StepTensors t = forward_backward(model_, b);
    bad_.copy_(maximum(bad_, t.bad));
    opt_.apply(bad_);
    return t;
  }

  ResNet50& model_;
  optim::Optimizer& opt_;
  Device dev_;
  Tensor bad_;  // the trainer's sticky non-finite flag, which the update reads
  GraphPlan::Use last_ = GraphPlan::Use::Eager;
  int64_t steps_ = 0;
  // Last, so it is destroyed first: each graph waits for its last replay
  // before the tensors above are freed.
  GraphSet<StepTensors> graphs_;
};
// What a test batch leaves on the device: its mean cross-entropy and its
// number of correct predictions, 0-d float32 tensors.
struct EvalTensors {
  Tensor loss, correct;
};

// Softmax probabilities of a batch's logits, as eval and predict report them.
Tensor softmax_probs(const Tensor& logits) { return exp(log_softmax(logits)); }

// The test pass of one batch (the model in evaluation mode, no gradients).
// Nothing here waits for the device.
EvalTensors eval_batch(ResNet50& model, const Tensor& images, const Tensor& labels, Tensor* logits_out = nullptr) {
  const Tensor logits = model.forward(images);
  if (logits_out) *logits_out = logits;
  // The labels were checked when the dataset was read (see forward_backward).
  return {cross_entropy(logits, labels, /*check_labels=*/false), count_correct(logits, labels)};
}

// --cuda-graph for the trainer's test pass: eval_batch captured as a CUDA
// graph and replayed for later test batches of the same size, in this
// epoch's test pass and every later one, as GraphedStep does for the
// training step (GraphPlan: the first batch of a size runs eagerly, the
// second is captured; so the test split's last, smaller batch replays from
// the third test pass on). The graphs read the parameters and BatchNorm's
// running statistics where they live; the optimizer and the training
// forward update them in place, so one capture serves the whole run. If a
// capture fails, the run says why on stderr and runs the batches of sizes
// without a graph eagerly from then on. With probabilities (eval and
// predict), the graphs also compute each batch's softmax.
class GraphedEval {
 public:
  GraphedEval(ResNet50& model, Device dev, bool with_probs = false)
      : model_(model), dev_(dev), with_probs_(with_probs) {}

  // Runs the test pass of b (the caller has put the model in evaluation
  // mode without gradients) and returns its outcome (with probs, its
  // softmax probabilities: a copy on the device), or returns false and does
  // nothing where the caller must run it eagerly.
  bool run(const data::Batch& b, EvalTensors& out, Tensor* probs = nullptr) {
    LRT_CHECK((probs != nullptr) == with_probs_, "GraphedEval: probabilities asked of a graph built ",
              with_probs_ ? "with" : "without", " them");
    Slot* s = nullptr;
    switch (graphs_.use_for(b, s)) {
      case GraphPlan::Use::Eager:
        return false;
      case GraphPlan::Use::Replay:
        s->graph.replay();
        model_.replayed_forward();
        break;
      case GraphPlan::Use::Capture: {
        const bool ok = capture(*s);
        graphs_.captured(ok);  // a failed capture's slot is gone
        if (!ok) return false;
        break;
      }
    }
    out = {s->out.loss.clone(), s->out.correct.clone()};  // the next replay overwrites them
    if (probs) *probs = s->probs.clone();
    ++batches_;
    return true;
  }

  // Test batches run by a graph (the captured ones and every replay).
  int64_t batches() const { return batches_; }

 private:
  using Slot = GraphSet<EvalTensors>::Slot;

  bool capture(Slot& s) {
    try {
      s.graph.capture(dev_.index, [&] {
        Tensor logits;
        s.out = eval_batch(model_, s.images, s.labels, with_probs_ ? &logits : nullptr);
        if (with_probs_) s.probs = softmax_probs(logits);
      });
    } catch (const Error& e) {
      std::fprintf(stderr,
                   "resnet50_cifar: --cuda-graph: the test pass: %s; it goes on without a graph for batches of %lld\n",
                   e.message().c_str(), static_cast<long long>(s.images.size(0)));
      return false;
    }
    s.graph.replay();  // the captured batch itself
    return true;
  }

  ResNet50& model_;
  Device dev_;
  bool with_probs_;
  int64_t batches_ = 0;
  GraphSet<EvalTensors> graphs_;  // last: destroyed first, after the last replays
};
// Where an epoch's training time goes on the device: the epoch record's
// "time_split_ms". Marks on the device's queue (StreamMarks: CUDA events, or
// the host clock on the CPU) before the epoch's first batch, when each batch
// is ready (the loader's work queued) and after each step's work is queued.
// The steps' time splits by how they ran (eager; the step captured into a
// CUDA graph, with its replay; replayed), and what lies between a step's end
// and the next batch's readiness is "between_steps": the data pipeline's
// work and any time the device waited for the host (read-backs, host work,
// an eager step's launches). "span" runs from the first mark to the last.
class EpochClock {
 public:
  explicit EpochClock(Device dev) : marks_(dev) {}

  void begin() {
    marks_.clear();
    kinds_.clear();
    marks_.mark();
  }
  void batch_ready() { marks_.mark(); }
  void step_queued(GraphPlan::Use how) {
    marks_.mark();
    kinds_.push_back(how);
  }

  // The split as a JSON object (waits for the device to reach the last mark).
  std::string json() const {
    const size_t steps = kinds_.size();
    if (steps == 0 || marks_.size() < 2 * steps + 1) return "null";
    double between = 0.0;
    std::vector<double> by[3];
    for (size_t i = 0; i < steps; ++i) {
      const size_t ready = 1 + 2 * i, queued = ready + 1;
      between += marks_.elapsed_ms(ready - 1, ready);
      by[static_cast<int>(kinds_[i])].push_back(marks_.elapsed_ms(ready, queued));
    }
    std::string out = "{\"span\":" + num(marks_.elapsed_ms(0, 2 * steps)) + ",\"between_steps\":" + num(between);
    // Indexed by GraphPlan::Use.
    static_assert(static_cast<int>(GraphPlan::Use::Eager) == 0 && static_cast<int>(GraphPlan::Use::Capture) == 1 &&
                  static_cast<int>(GraphPlan::Use::Replay) == 2);
    const char* names[3] = {"eager", "captured", "replayed"};
    for (int k = 0; k < 3; ++k) {
      std::vector<double>& t = by[k];
      if (t.empty()) continue;
      double total = 0.0;
      for (double ms : t) total += ms;
      std::sort(t.begin(), t.end());
      out += std::string(",\"") + names[k] + "\":{\"steps\":" + std::to_string(t.size()) + ",\"total\":" + num(total) +
             ",\"median\":" + num(t[t.size() / 2]) + "}";
    }
    return out + "}";
  }

 private:
  StreamMarks marks_;
  std::vector<GraphPlan::Use> kinds_;  // how each step ran
};

double mib(size_t bytes) { return std::round(static_cast<double>(bytes) / (1024.0 * 1024.0) * 10.0) / 10.0; }

std::string oom_hint(const Error& e, int64_t batch) {
  const std::string m = e.message();
  if (m.find("out of memory") == std::string::npos) return m;
  return m + " -- the batch size is " + std::to_string(batch) + "; try --batch-size " +
         std::to_string(std::max<int64_t>(1, batch / 2));
}

// -------------------------------------------------------- the run's options --

// The options a checkpoint must agree on to continue the same run.
std::map<std::string, std::string> run_identity(const RunOptions& o, int64_t classes) {
  return {{"stem", o.stem},
          {"head", o.head},
          {"dataset", o.dataset},
          {"classes", std::to_string(classes)},
          {"train_subset", std::to_string(o.train_subset)},
          {"batch_size", std::to_string(o.batch_size)},
          {"optimizer", o.optimizer},
          {"lr_groups", o.lr_groups},
          {"seed", std::to_string(o.seed)},
          {"shuffle", o.no_shuffle ? "false" : "true"},
          {"augment", o.no_augment ? "false" : "true"},
          {"normalize", o.normalize}};
}

std::string shell_quote(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,") ==
                        std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

// --------------------------------------------------------------- evaluation --

namespace {

// evaluate, with the trainer's test-pass graph where it has one.
EvalResult evaluate_with(ResNet50& model, data::Loader& loader, bool keep_probs, GraphedEval* graph) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  EvalResult r;
  // Each batch's mean loss and correct count stay on the device until the
  // end, so the device is not waited for batch by batch.
  std::vector<std::pair<Tensor, int64_t>> batch_loss;
  std::vector<Tensor> batch_correct;
  std::vector<Tensor> probs, labels;
  const int64_t graph_batches_before = graph ? graph->batches() : 0;
  loader.start_epoch(0);
  data::Batch b;
  while (loader.next(b)) {
    const int64_t n = b.labels.numel();
    EvalTensors t;
    Tensor p;
    if (!graph || !graph->run(b, t, keep_probs ? &p : nullptr)) {
      Tensor logits;
      t = eval_batch(model, b.images, b.labels, keep_probs ? &logits : nullptr);
      if (keep_probs) p = softmax_probs(logits);
    }
    batch_loss.emplace_back(t.loss, n);
    batch_correct.push_back(t.correct);
    r.count += n;
    if (keep_probs) {  // on the device until the end, as the losses
      probs.push_back(p);
      labels.push_back(b.labels);
    }
  }
  model.train(was_training);
  if (graph) r.graph_batches = graph->batches() - graph_batches_before;
  double loss_sum = 0.0;
  int64_t correct = 0;
  for (const auto& [loss, n] : batch_loss) loss_sum += loss.item() * static_cast<double>(n);
  for (const Tensor& c : batch_correct) correct += static_cast<int64_t>(c.item());
  if (r.count > 0) {
    r.loss = loss_sum / static_cast<double>(r.count);
    r.accuracy = static_cast<double>(correct) / static_cast<double>(r.count);
  }
  if (keep_probs && r.count > 0) {
    const int64_t classes = probs[0].size(1);
    r.probs = empty({r.count, classes});
    r.labels = empty({r.count}, DType::Int64);
    int64_t at = 0;
    for (size_t i = 0; i < probs.size(); ++i) {
      const int64_t n = probs[i].size(0);
      r.probs.slice(0, at, at + n).copy_(probs[i].to(kCPU));
      r.labels.slice(0, at, at + n).copy_(labels[i].to(kCPU));
      at += n;
    }
  }
  return r;
}

}  // namespace

EvalResult evaluate(ResNet50& model, data::Loader& loader, bool keep_probs, bool cuda_graph) {
  const Device dev = loader.options().device;
  if (!cuda_graph || !dev.is_cuda() || !loader.options().gpu_resident)
    return evaluate_with(model, loader, keep_probs, nullptr);
  GraphedEval graph(model, dev, keep_probs);
  return evaluate_with(model, loader, keep_probs, &graph);
}

// -------------------------------------------------------------------- train --

int run_train(RunOptions o) {
  apply_preset(o);
  if (is_demo(o)) apply_demo_defaults(o);
  if (!o.checkpoint_dir.empty()) check_writable_dir(o.checkpoint_dir, "--checkpoint-dir");
  if (!o.save_weights.empty()) check_writable_file(o.save_weights, "--save-weights");
  if (!o.log.empty()) check_writable_file(o.log, "--log");
  LRT_CHECK(o.resume.empty() || fs::exists(o.resume), "--resume: '", o.resume, "': no such checkpoint");
  if (o.snapshots) LRT_CHECK(o.schedule == "sgdr", "--snapshots needs --schedule sgdr (snapshots are taken at cycle ends)");
  const std::string snapshot_dir =
      !o.checkpoint_dir.empty() ? o.checkpoint_dir
      : !o.save_weights.empty() ? (fs::path(o.save_weights).has_parent_path() ? fs::path(o.save_weights).parent_path().string() : ".")
                                : ".";
  if (o.snapshots) check_writable_dir(snapshot_dir, "--snapshots");

  if (o.cuda_graph == Switch::On) {
    LRT_CHECK(!o.skip_nonfinite,
              "--cuda-graph cannot be combined with --skip-nonfinite, which decides on the host at every step "
              "whether the optimizer runs");
    LRT_CHECK(o.head != "seed",
              "--cuda-graph cannot replay the seed head's dropout (a graph would repeat one mask); use --head linear");
  }
  const Device dev = resolve_device(o.device);
  const bool test_graph = use_test_graph(o, dev);  // refuses --cuda-graph off CUDA
  const data::CifarDataset ds = load_dataset(o);
  if (is_demo(o))
    std::printf(
        "no --data given: a short demo on synthetic CIFAR-10-format data (%lld training / %lld test images)\n"
        "  for real CIFAR-10, download the binary version (cifar-10-binary.tar.gz from\n"
        "  https://www.cs.toronto.edu/~kriz/cifar.html), extract it and pass --data <folder>\n",
        static_cast<long long>(ds.train.size()), static_cast<long long>(ds.test.size()));
  LRT_CHECK(ds.train.size() > 0, "--data: no training images");
  const int64_t classes = ds.num_classes;
  auto model = build_model(o, classes, dev);
  model->train();
  optim::Optimizer opt(build_groups(o, *model), optimizer_config(o));

  auto train_split = std::make_shared<const data::CifarSplit>(ds.train);
  auto test_split = std::make_shared<const data::CifarSplit>(ds.test);
  data::Loader train_loader(train_split, train_loader_options(o, dev));
  data::Loader test_loader(test_split, test_loader_options(o, dev));
  const int64_t spe = train_loader.batches_per_epoch();
  const int64_t total_steps = o.max_steps > 0 ? std::min(o.max_steps, o.epochs * spe) : o.epochs * spe;
  optim::Schedule sched(schedule_config(o, spe, total_steps));

  TrainState st;
  st.data_seed = o.seed;
  st.dropout_seed = model->dropout_generator().seed();
  double epoch_loss_sum = 0.0;
  int64_t epoch_correct = 0, epoch_seen = 0;
  const auto identity = run_identity(o, classes);
  if (!o.resume.empty()) {
    Checkpoint ck;
    try {
      ck = load_checkpoint(o.resume, *model, opt);
    } catch (const Error& e) {
      LRT_THROW("--resume: ", e.message(), " (a checkpoint continues only the run that made it: same --stem, --head, "
                "--dataset, --optimizer and --lr-groups)");
    }
    for (const auto& [key, value] : identity) {
      auto it = ck.options.find(key);
      LRT_CHECK(it != ck.options.end() && it->second == value, "--resume: the checkpoint was made with ", key, " ",
                it == ck.options.end() ? std::string("(unknown)") : it->second, ", this run has ", value);
    }
    st = ck.state;
    model->dropout_generator().set_offset(st.dropout_offset);
    auto read = [&](const char* key) {
      auto it = ck.options.find(key);
      return it == ck.options.end() ? 0.0 : std::strtod(it->second.c_str(), nullptr);
    };
    epoch_loss_sum = read("progress.loss_sum");
    epoch_correct = static_cast<int64_t>(read("progress.correct"));
    epoch_seen = static_cast<int64_t>(read("progress.seen"));
    std::printf("resumed from %s at step %lld (epoch %lld, batch %lld)\n", o.resume.c_str(),
                static_cast<long long>(st.step), static_cast<long long>(st.epoch + 1),
                static_cast<long long>(st.batch_in_epoch));
  }

  // Every input has been checked: only now are files and folders touched, so
  // a refused run truncates no log and leaves no empty folder.
  if (!o.checkpoint_dir.empty()) make_dir(o.checkpoint_dir, "--checkpoint-dir");
  JsonLog log;
  log.open(o.log, !o.resume.empty());

  const std::string ck_path = o.checkpoint_dir.empty() ? "" : o.checkpoint_dir + "/" + kCheckpointFile;
  auto save_ck = [&]() {
    if (ck_path.empty()) return;
    Checkpoint ck;
    ck.state = st;
    ck.state.dropout_offset = model->dropout_generator().offset();
    ck.options = identity;
    ck.options["progress.loss_sum"] = num(epoch_loss_sum);
    ck.options["progress.correct"] = std::to_string(epoch_correct);
    ck.options["progress.seen"] = std::to_string(epoch_seen);
    save_checkpoint(ck_path, *model, opt, ck);
  };

  const std::string precision_str = precision_name(o, dev);
  const char* precision = precision_str.c_str();
  std::printf("training ResNet50 (%s stem, %s head, %lld parameters, %s) on %s: %lld images, %lld steps/epoch, %lld "
              "epochs, batch %lld, %s, lr %g, schedule %s, %zu lr group(s)\n",
              o.stem.c_str(), o.head.c_str(), static_cast<long long>(model->num_parameters()), precision,
              o.dataset.c_str(),
              static_cast<long long>(ds.train.size()), static_cast<long long>(spe), static_cast<long long>(o.epochs),
              static_cast<long long>(o.batch_size), o.optimizer.c_str(), o.lr, o.schedule.c_str(), opt.num_groups());
  log.write("{\"event\":\"start\",\"step\":" + std::to_string(st.step) + ",\"steps_per_epoch\":" +
            std::to_string(spe) + ",\"total_steps\":" + std::to_string(total_steps) + ",\"groups\":" +
            std::to_string(opt.num_groups()) + ",\"device\":" + json_string(dev.str()) + ",\"precision\":" + json_string(precision) +
            ",\"memory_format\":" + json_string(use_channels_last(o, dev) ? "channels_last" : "contiguous") +
            (o.deterministic ? ",\"deterministic\":true" : "") + (o.cudnn_benchmark ? ",\"cudnn_benchmark\":true" : "") +
            (o.cudnn_bn ? ",\"cudnn_bn\":true" : "") +
            (dev.is_cpu() ? ",\"cpu_gemm\":" + json_string(std::string(kernels::cpu::gemm_backend()) + ", " +
                                                          kernels::cpu::gemm_kernels())
                          : std::string()) +
            "}");

  SignalScope signals;
  Progress progress(stdout_is_terminal());
  const auto run_start = std::chrono::steady_clock::now();
  bool stopped_early = false;

  // Steps run but not yet read back (at most --sync-every; one with
  // --skip-nonfinite), and the device flag the optimizer reads: set once any
  // of them went non-finite.
  struct PendingStep {
    int64_t n, epoch, batch;  // step number; epoch and batch, counted from 0
    std::vector<double> lrs;
    int64_t images;
    StepTensors t;
  };
  std::vector<PendingStep> pending;
  // Set (to 1) by the first non-finite step and never cleared: the run stops there.
  Tensor bad_since_read = zeros({}, TensorOptions(dev));
  std::unique_ptr<GraphedStep> graphed;
  // By default only where the batches are GPU-resident: ones staged by a
  // worker thread on the stream would be captured too.
  if (use_cuda_graph(o, dev) && (o.cuda_graph == Switch::On || train_loader.options().gpu_resident)) {
    LRT_CHECK(train_loader.options().gpu_resident, "--cuda-graph needs the GPU-resident data path");
    graphed = std::make_unique<GraphedStep>(*model, opt, dev, bad_since_read);
  }
  // The test pass replays a graph of its own on CUDA unless --no-cuda-graph,
  // also where the step cannot (--skip-nonfinite, the seed head's dropout,
  // which is off in evaluation).
  std::unique_ptr<GraphedEval> graphed_eval;
  if (test_graph && test_loader.options().gpu_resident)
    graphed_eval = std::make_unique<GraphedEval>(*model, dev);
  // On the CPU a read-back waits for nothing, so the default reads every step.
  const int64_t sync_every = o.sync_every > 0 ? o.sync_every : dev.is_cuda() ? 10 : 1;
  EpochClock clock(dev);

  // Logs a step read back and adds it to the epoch's figures.
  auto record = [&](const PendingStep& p, const StepOutcome& out, bool skipped) {
    if (!skipped) {
      epoch_loss_sum += out.loss * static_cast<double>(p.images);
      epoch_correct += out.correct;
      epoch_seen += p.images;
    }
    std::string line = "{\"event\":\"step\",\"step\":" + std::to_string(p.n) + ",\"epoch\":" +
                       num(sched.epoch_at_step(p.n)) + ",\"loss\":" + num(out.loss) + ",\"lr\":[";
    for (size_t g = 0; g < p.lrs.size(); ++g) {
      if (g) line += ',';
      line += num(p.lrs[g]);
    }
    line += "]";
    if (skipped) line += ",\"skipped\":true,\"skipped_total\":" + std::to_string(st.skipped_steps);
    log.write(line + "}");
    progress.update(p.batch + 1, epoch_seen ? epoch_loss_sum / static_cast<double>(epoch_seen) : out.loss,
                    epoch_seen ? static_cast<double>(epoch_correct) / static_cast<double>(epoch_seen) : 0.0, p.lrs,
                    epoch_seen);
  };

  // Stops the run at a non-finite step; its checkpoint, if any, is untouched.
  auto stop_nonfinite = [&](const PendingStep& p, const StepOutcome& out) {
    progress.end_epoch();
    log.write("{\"event\":\"nonfinite\",\"step\":" + std::to_string(p.n) + ",\"loss\":" + num(out.loss) + "}");
    std::fprintf(stderr,
                 "resnet50_cifar: step %lld (epoch %lld, batch %lld): the %s is not finite (loss %s); "
                 "stopping. %s Use --skip-nonfinite to skip such steps, or lower --lr.\n",
                 static_cast<long long>(p.n), static_cast<long long>(p.epoch + 1),
                 static_cast<long long>(p.batch + 1), std::isfinite(out.loss) ? "gradient" : "loss",
                 num(out.loss).c_str(),
                 ck_path.empty() ? "" : ("The last good checkpoint, " + ck_path + ", is untouched.").c_str());
    return kExitNonFinite;
  };

  // Reads back the pending steps in order; returns kExitNonFinite at the
  // first non-finite one (the optimizer left it and every later one out),
  // else 0.
  auto read_back = [&]() -> int {
    std::vector<const StepTensors*> queued;
    for (const PendingStep& p : pending) queued.push_back(&p.t);
    const std::vector<StepOutcome> outcomes = read_outcomes(queued);
    for (size_t i = 0; i < pending.size(); ++i) {
      const PendingStep& p = pending[i];
      const StepOutcome& out = outcomes[i];
      if (!out.finite) {
        const int rc = stop_nonfinite(p, out);
        pending.clear();
        return rc;
      }
      record(p, out, false);
    }
    pending.clear();
    return 0;
  };

  auto interrupted = [&]() -> int {
    if (const int rc = read_back(); rc != 0) return rc;
    const int sig = g_signal.load();
    progress.end_epoch();
    if (!ck_path.empty()) {
      save_ck();
      std::printf("interrupted by %s after step %lld; checkpoint saved to %s\nresume with: resnet50_cifar train "
                  "--resume %s [the same flags]\n",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(st.step), ck_path.c_str(),
                  shell_quote(ck_path).c_str());
    } else {
      std::printf("interrupted by %s after step %lld; nothing saved (use --checkpoint-dir to be able to resume)\n",
                  sig == SIGTERM ? "SIGTERM" : "SIGINT", static_cast<long long>(st.step));
    }
    std::fflush(stdout);
    return 128 + sig;
  };

  // The epoch record's memory: the most lrt's allocator on the training
  // device had handed out during the epoch (its training and test passes),
  // and what it held from the device at the end, cached blocks and the CUDA
  // graphs' pools included (PyTorch's max_memory_allocated and
  // memory_reserved).
  Allocator& memory = allocator_for(dev);
  try {
    while (st.epoch < o.epochs && st.step < total_steps) {
      memory.reset_peak();
      train_loader.start_epoch(st.epoch, st.batch_in_epoch);
      progress.begin_epoch(st.epoch, o.epochs, spe);
      clock.begin();
      data::Batch b;
      while (train_loader.next(b)) {
        clock.batch_ready();
        const int64_t n = st.step + 1;
        const double lr = sched.lr_at_step(n);
        PendingStep p{n, st.epoch, st.batch_in_epoch, opt.group_lrs(lr), b.labels.numel(), StepTensors{}};
        // A graph replay (or capture) runs the optimizer too.
        const bool replayed = graphed && graphed->run(b, lr, p.t);
        const GraphPlan::Use how = replayed ? graphed->last() : GraphPlan::Use::Eager;
        if (!replayed) p.t = forward_backward(*model, b);
        if (o.skip_nonfinite) {
          const StepOutcome out = read_outcome(p.t);
          if (out.finite) {
            opt.step(lr);
          } else {
            ++st.skipped_steps;
            model->zero_grad();
          }
          clock.step_queued(how);
          record(p, out, !out.finite);
        } else {
          if (!replayed) {
            bad_since_read.copy_(maximum(bad_since_read, p.t.bad));
            opt.step(lr, bad_since_read);
          }
          clock.step_queued(how);
          pending.push_back(std::move(p));
          if (static_cast<int64_t>(pending.size()) >= sync_every)
            if (const int rc = read_back(); rc != 0) return rc;
        }
        st.step = n;
        ++st.batch_in_epoch;

        if (sched.is_cycle_end(n)) {
          if (const int rc = read_back(); rc != 0) return rc;
          const int64_t cycle = sched.cycle_at_step(n);
          std::string snap = "null";
          if (o.snapshots) {
            const std::string path = snapshot_dir + "/snapshot-cycle" + std::to_string(cycle + 1) + ".safetensors";
            save_weights(*model, path, {{"step", std::to_string(n)}, {"cycle", std::to_string(cycle + 1)}});
            snap = json_string(path);
          }
          log.write("{\"event\":\"cycle_end\",\"cycle\":" + std::to_string(cycle + 1) + ",\"step\":" +
                    std::to_string(n) + ",\"snapshot\":" + snap + "}");
        }
        if (g_signal.load() != 0) return interrupted();
        if (st.step >= total_steps) {
          stopped_early = st.batch_in_epoch < spe;
          break;
        }
      }
      if (const int rc = read_back(); rc != 0) return rc;
      progress.end_epoch();

      const double train_secs = progress.epoch_seconds();
      const std::string time_split = clock.json();
      const EvalResult test =
          ds.test.size() > 0 ? evaluate_with(*model, test_loader, false, graphed_eval.get()) : EvalResult{};
      const AllocatorStats mem = memory.stats();
      const double train_loss = epoch_seen ? epoch_loss_sum / static_cast<double>(epoch_seen) : NAN;
      const double train_acc = epoch_seen ? static_cast<double>(epoch_correct) / static_cast<double>(epoch_seen) : NAN;
      const double ips = train_secs > 0 ? static_cast<double>(epoch_seen) / train_secs : 0.0;
      char test_part[64] = "no test images";
      if (test.count)
        std::snprintf(test_part, sizeof test_part, "test loss %.4f acc %.2f%%", test.loss, 100 * test.accuracy);
      std::printf("epoch %lld/%lld: train loss %.4f acc %.2f%% | %s | %.0f img/s, %.1f s\n",
                  static_cast<long long>(st.epoch + 1), static_cast<long long>(o.epochs), train_loss, 100 * train_acc,
                  test_part, ips, progress.epoch_seconds());
      std::fflush(stdout);
      log.write("{\"event\":\"epoch\",\"epoch\":" + std::to_string(st.epoch + 1) + ",\"step\":" +
                std::to_string(st.step) + ",\"train_loss\":" + num(train_loss) + ",\"train_acc\":" + num(train_acc) +
                ",\"test_loss\":" + (test.count ? num(test.loss) : "null") + ",\"test_acc\":" +
                (test.count ? num(test.accuracy) : "null") + ",\"images_per_s\":" + num(ips) +
                ",\"train_seconds\":" + num(train_secs) + ",\"seconds\":" + num(progress.epoch_seconds()) +
                ",\"time_split_ms\":" + time_split + ",\"peak_memory_mib\":" + num(mib(mem.peak_bytes)) +
                ",\"reserved_memory_mib\":" + num(mib(mem.reserved_bytes)) +
                (stopped_early ? ",\"partial\":true" : "") + "}");
      epoch_loss_sum = 0.0;
      epoch_correct = epoch_seen = 0;
      if (!stopped_early) {
        ++st.epoch;
        st.batch_in_epoch = 0;
      }
      // At an epoch end, or where --max-steps stopped inside one (a later run
      // with a larger --max-steps resumes from there).
      save_ck();
      if (g_signal.load() != 0) return interrupted();
      if (stopped_early) break;
    }
  } catch (const Error& e) {
    // Steps that ran before the error are still logged, and a non-finite one
    // among them is reported as such (reading back may fail too after a
    // device error; then only the error is reported).
    try {
      if (read_back() == kExitNonFinite) return kExitNonFinite;
    } catch (const Error&) {
    }
    progress.end_epoch();
    LRT_THROW(oom_hint(e, o.batch_size));
  }

  if (!o.save_weights.empty()) {
    save_weights(*model, o.save_weights, {{"step", std::to_string(st.step)}});
    std::printf("saved weights to %s\n", o.save_weights.c_str());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_start).count();
  log.write("{\"event\":\"end\",\"step\":" + std::to_string(st.step) + ",\"skipped_steps\":" +
            std::to_string(st.skipped_steps) +
            (graphed ? ",\"cuda_graph_steps\":" + std::to_string(graphed->steps()) : std::string()) +
            (graphed_eval ? ",\"cuda_graph_test_batches\":" + std::to_string(graphed_eval->batches()) : std::string()) +
            ",\"seconds\":" + num(secs) + "}");
  std::printf("done: %lld steps in %.1f s%s%s\n", static_cast<long long>(st.step), secs,
              st.skipped_steps ? (", " + std::to_string(st.skipped_steps) + " non-finite steps skipped").c_str() : "",
              graphed ? (", " + std::to_string(graphed->steps()) + " of them replayed from a CUDA graph").c_str() : "");
  return 0;
}

// ------------------------------------------------------------------ lr-find --

int run_lr_find(RunOptions o, const LrFindFlags& f) {
  apply_preset(o);
  if (is_demo(o)) apply_demo_defaults(o);
  check_writable_file(f.out, "--out");
  const Device dev = resolve_device(o.device);
  const data::CifarDataset ds = load_dataset(o);
  auto model = build_model(o, ds.num_classes, dev);
  model->train();
  optim::Optimizer opt(build_groups(o, *model), optimizer_config(o));
  data::Loader loader(std::make_shared<const data::CifarSplit>(ds.train), train_loader_options(o, dev));
  int64_t epoch = 0;
  loader.start_epoch(epoch);
  optim::LrFindOptions lo;
  lo.start_lr = f.start_lr;
  lo.end_lr = f.end_lr;
  lo.num_steps = f.steps;
  std::printf("lr-find: %lld steps from %g to %g (batch %lld)\n", static_cast<long long>(f.steps), f.start_lr,
              f.end_lr, static_cast<long long>(o.batch_size));
  int64_t done = 0;
  const optim::LrFindResult r = optim::lr_find(
      [&](double lr) {
        data::Batch b;
        if (!loader.next(b)) {
          loader.start_epoch(++epoch);
          LRT_CHECK(loader.next(b), "lr-find: the training set is empty");
        }
        const StepOutcome out = read_outcome(forward_backward(*model, b));
        if (out.finite) opt.step(lr);
        if (++done % 10 == 0 || !stdout_is_terminal()) {
          std::printf("  step %lld lr %.3g loss %s\n", static_cast<long long>(done), lr, num(out.loss).c_str());
          std::fflush(stdout);
        }
        return out.finite ? out.loss : NAN;
      },
      model->parameters(), opt, lo);

  write_text_atomically(f.out, "--out", [&](std::ostream& csv) {
    csv << "lr,loss,smoothed\n";
    char buf[96];
    for (size_t i = 0; i < r.lrs.size(); ++i) {
      std::snprintf(buf, sizeof buf, "%.9g,%s,%s\n", r.lrs[i], num(r.losses[i]).c_str(), num(r.smoothed[i]).c_str());
      csv << buf;
    }
  });
  std::printf("wrote %zu points to %s%s\nsuggested lr: %.3g (steepest descent), %.3g (minimum / 10)\n", r.lrs.size(),
              f.out.c_str(), r.diverged ? " (stopped when the loss diverged)" : "", r.suggestion_steepest,
              r.suggestion_min_div10);
  return 0;
}

}  // namespace lrt::app
