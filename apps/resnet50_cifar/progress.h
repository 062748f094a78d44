// Training progress for people: on a terminal, one line per epoch redrawn in
// place (bar, step, loss, accuracy, the LR of each group, images/s, ETA);
// when stdout is not a terminal (a log file, CI), the same fields as a plain
// line every few seconds and at the end of the epoch.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace lrt::app {

class Progress {
 public:
  // interactive: redraw in place (a terminal); period: seconds between
  // plain lines otherwise.
  Progress(bool interactive, double period_s = 5.0);
  void begin_epoch(int64_t epoch, int64_t epochs, int64_t batches);
  // After batch `done` (1-based) of the epoch; loss and acc are the epoch's
  // running means; images counts the images of this epoch so far.
  void update(int64_t done, double loss, double acc, const std::vector<double>& lrs, int64_t images);
  // Finishes the epoch's line (the summary follows on its own line).
  void end_epoch();
  double epoch_seconds() const;

 private:
  std::string line(int64_t done, double loss, double acc, const std::vector<double>& lrs, int64_t images) const;

  bool interactive_;
  double period_s_;
  int64_t epoch_ = 0, epochs_ = 0, batches_ = 0;
  std::chrono::steady_clock::time_point start_, last_print_;
  bool open_line_ = false;
};

// True when stdout is a terminal.
bool stdout_is_terminal();

}  // namespace lrt::app
