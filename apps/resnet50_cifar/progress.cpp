// Progress lines: a bar redrawn with '\r' on a terminal, plain periodic lines
// elsewhere.
#include "apps/resnet50_cifar/progress.h"

#include <unistd.h>

#include <cstdio>

namespace lrt::app {

bool stdout_is_terminal() { return isatty(fileno(stdout)) == 1; }

Progress::Progress(bool interactive, double period_s) : interactive_(interactive), period_s_(period_s) {}

void Progress::begin_epoch(int64_t epoch, int64_t epochs, int64_t batches) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  start_ = last_print_ = std::chrono::steady_clock::now();
}

double Progress::epoch_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string Progress::line(int64_t done, double loss, double acc, const std::vector<double>& lrs,
                           int64_t images) const {
  const double secs = epoch_seconds();
  const double ips = secs > 0 ? static_cast<double>(images) / secs : 0.0;
  const double eta = done > 0 ? secs * static_cast<double>(batches_ - done) / static_cast<double>(done) : 0.0;
  char buf[256];
  std::string s;
  if (interactive_) {
    constexpr int kWidth = 24;
    const int filled = batches_ > 0 ? static_cast<int>(kWidth * done / batches_) : 0;
    s.reserve(kWidth + 3);
    s.push_back('[');
    s.append(static_cast<size_t>(filled), '#');
    s.append(static_cast<size_t>(kWidth - filled), '.');
    s.append("] ");
  }
  std::snprintf(buf, sizeof buf, "epoch %lld/%lld step %lld/%lld loss %.4f acc %.2f%% lr ",
                static_cast<long long>(epoch_ + 1), static_cast<long long>(epochs_), static_cast<long long>(done),
                static_cast<long long>(batches_), loss, 100.0 * acc);
  s += buf;
  for (size_t i = 0; i < lrs.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.3g", i ? "," : "", lrs[i]);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, " | %.0f img/s eta %.0fs", ips, eta);
  s += buf;
  return s;
}

void Progress::update(int64_t done, double loss, double acc, const std::vector<double>& lrs, int64_t images) {
  const auto now = std::chrono::steady_clock::now();
  if (interactive_) {
    // Redraw at most ~10 times a second.
    if (done != batches_ && std::chrono::duration<double>(now - last_print_).count() < 0.1) return;
    std::printf("\r%s\033[K", line(done, loss, acc, lrs, images).c_str());
    std::fflush(stdout);
    open_line_ = true;
  } else {
    if (done != batches_ && std::chrono::duration<double>(now - last_print_).count() < period_s_) return;
    std::printf("%s\n", line(done, loss, acc, lrs, images).c_str());
    std::fflush(stdout);
  }
  last_print_ = now;
}

void Progress::end_epoch() {
  if (interactive_ && open_line_) std::printf("\n");
  open_line_ = false;
  std::fflush(stdout);
}

}  // namespace lrt::app
