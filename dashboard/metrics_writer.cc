#include "dashboard/metrics_writer.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

namespace fanout {

std::string MetricsWriter::FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    // The shortest form that reads back as the same double ("0.005", not 0.00500...01).
    for (int digits = 6; digits <= 17; ++digits) {
      std::snprintf(buf, sizeof buf, "%.*g", digits, value);
      if (std::strtod(buf, nullptr) == value) break;
    }
  }
  return buf;
}

std::string MetricsWriter::EscapeLabel(const std::string& value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void MetricsWriter::Family(const std::string& name, const std::string& type,
                           const std::string& help) {
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  text_ += "# HELP " + name + " " + escaped + "\n# TYPE " + name + " " + type + "\n";
}

void MetricsWriter::Sample(const std::string& name, double value, const Labels& labels) {
  text_ += name;
  if (!labels.empty()) {
    text_ += '{';
    for (size_t i = 0; i < labels.size(); ++i) {
      if (i > 0) text_ += ',';
      text_ += labels[i].first + "=\"" + EscapeLabel(labels[i].second) + "\"";
    }
    text_ += '}';
  }
  text_ += ' ' + FormatValue(value) + '\n';
}

void MetricsWriter::Counter(const std::string& name, const std::string& help, double value) {
  Family(name, "counter", help);
  Sample(name, value);
}

void MetricsWriter::Gauge(const std::string& name, const std::string& help, double value) {
  Family(name, "gauge", help);
  Sample(name, value);
}

void MetricsWriter::Histogram(const std::string& name, const std::string& help,
                              const std::vector<double>& bounds,
                              const std::vector<uint64_t>& counts, double sum) {
  Family(name, "histogram", help);
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    double le = i < bounds.size() ? bounds[i] : INFINITY;
    Sample(name + "_bucket", static_cast<double>(cumulative), {{"le", FormatValue(le)}});
  }
  Sample(name + "_sum", sum);
  Sample(name + "_count", static_cast<double>(cumulative));
}

}  // namespace fanout
