#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <memory>

namespace fanout {
namespace {

std::shared_ptr<spdlog::logger> MakeLogger() {
  if (auto existing = spdlog::get(kLoggerName)) return existing;
  auto logger = std::make_shared<spdlog::logger>(
      kLoggerName, std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  logger->set_pattern("fanout: %^%l%$: %v");
  logger->set_level(spdlog::level::warn);
  try {
    spdlog::register_logger(logger);
  } catch (const spdlog::spdlog_ex&) {
    // Registered by the host between the lookup and here: use that one.
    if (auto existing = spdlog::get(kLoggerName)) return existing;
  }
  return logger;
}

}  // namespace

spdlog::logger& Log() {
  // Owned here as well as by the registry: a host's spdlog::drop_all() cannot free it.
  static const std::shared_ptr<spdlog::logger> logger = MakeLogger();
  return *logger;
}

}  // namespace fanout
