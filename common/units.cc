#include "common/units.h"

#include <cctype>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fanout {
namespace {

// Splits "1.5ms" into 1.5 and "ms"; false if the number part is malformed.
bool SplitNumber(std::string_view text, double& value, std::string& suffix) {
  std::string s(text);
  if (s.empty() || !(std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '.')) return false;
  char* end = nullptr;
  value = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(value)) return false;
  suffix = std::string(end);
  return true;
}

}  // namespace

Result<std::chrono::microseconds> ParseDuration(std::string_view text) {
  double v = 0;
  std::string unit;
  auto bad = Status::Error("bad duration '" + std::string(text) +
                           "': expected a positive number with a unit, e.g. 500ms, 2s, 1.5m");
  if (!SplitNumber(text, v, unit)) return bad;
  double scale = 0;
  if (unit.empty() || unit == "s")
    scale = 1e6;
  else if (unit == "ms")
    scale = 1e3;
  else if (unit == "us")
    scale = 1;
  else if (unit == "m" || unit == "min")
    scale = 60e6;
  else if (unit == "h")
    scale = 3600e6;
  else
    return bad;
  double us = v * scale;
  if (!(us >= 1) || us > 1e15) return bad;
  return std::chrono::microseconds(static_cast<int64_t>(us));
}

Result<DurationSpec> ParseDurationSpec(std::string_view text) {
  if (!text.empty() && text.back() == '%') {
    double v = 0;
    std::string rest;
    if (!SplitNumber(text.substr(0, text.size() - 1), v, rest) || !rest.empty() || v <= 0 ||
        v > 1e6)
      return Status::Error("bad duration '" + std::string(text) +
                           "': a relative timeout is a positive percentage, e.g. 300%");
    DurationSpec spec;
    spec.percent = v;
    return spec;
  }
  auto d = ParseDuration(text);
  if (!d.ok()) return d.status();
  DurationSpec spec;
  spec.absolute = *d;
  return spec;
}

Result<uint64_t> ParseSize(std::string_view text) {
  double v = 0;
  std::string unit;
  auto bad = Status::Error("bad size '" + std::string(text) +
                           "': expected a positive number of bytes, e.g. 4096, 64K, 4M, 1G");
  if (!SplitNumber(text, v, unit)) return bad;
  if (unit.size() >= 2 && unit.substr(unit.size() - 2) == "iB")
    unit.resize(unit.size() - 2);
  else if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b'))
    unit.pop_back();
  double scale = 1;
  if (unit.empty())
    scale = 1;
  else if (unit == "K" || unit == "k")
    scale = 1024.0;
  else if (unit == "M" || unit == "m")
    scale = 1024.0 * 1024;
  else if (unit == "G" || unit == "g")
    scale = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "t")
    scale = 1024.0 * 1024 * 1024 * 1024;
  else
    return bad;
  double bytes = v * scale;
  if (!(bytes >= 1) || bytes > 9.0e18) return bad;
  return static_cast<uint64_t>(bytes);
}

std::string FormatDuration(std::chrono::microseconds d) {
  char buf[32];
  double us = static_cast<double>(d.count());
  // Thresholds are where the smaller unit would round up to "1000.0ms".
  if (us >= 999950)
    std::snprintf(buf, sizeof buf, "%.2fs", us / 1e6);
  else if (us >= 1e3)
    std::snprintf(buf, sizeof buf, "%.1fms", us / 1e3);
  else
    std::snprintf(buf, sizeof buf, "%.0fus", us);
  return buf;
}

std::string FormatBytes(uint64_t bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(bytes);
  int u = 0;
  while (v >= 1023.95 && u < 4) {  // 1023.95 KiB would print as "1024.0 KiB"
    v /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
  return buf;
}

}  // namespace fanout
