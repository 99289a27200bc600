// MetricsWriter: the Prometheus text exposition format (version 0.0.4) for a handful of
// families: each family's # HELP and # TYPE lines once, then its samples. Names must match
// [a-zA-Z_:][a-zA-Z0-9_:]*; label values are escaped here. Not thread-safe (one per page).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace fanout {

class MetricsWriter {
 public:
  using Labels = std::vector<std::pair<std::string, std::string>>;

  // Starts a family: `type` is "counter", "gauge" or "histogram".
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // One sample of the current family (`name` may carry a suffix, e.g. "_bucket").
  void Sample(const std::string& name, double value, const Labels& labels = {});
  // A whole counter or gauge family of one unlabelled sample.
  void Counter(const std::string& name, const std::string& help, double value);
  void Gauge(const std::string& name, const std::string& help, double value);
  // A histogram family: `bounds` ascending upper bounds, `counts[i]` observations in
  // bucket i (not cumulative; counts has bounds.size() + 1 entries, the last for +Inf).
  void Histogram(const std::string& name, const std::string& help,
                 const std::vector<double>& bounds, const std::vector<uint64_t>& counts,
                 double sum);

  const std::string& text() const { return text_; }

  // "1", "0.25", "+Inf": a sample value as Prometheus parses it.
  static std::string FormatValue(double value);
  // A label value with \, " and newline escaped.
  static std::string EscapeLabel(const std::string& value);

 private:
  std::string text_;
};

}  // namespace fanout
