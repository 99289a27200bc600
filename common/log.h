// Log: fanout's own spdlog logger, named "fanout". Everything fanout logs (engine, worker,
// tasks, library, CLI) goes through Log(), never through spdlog's default logger, so a
// program using the library keeps its own logging untouched: fanout never replaces the
// default logger nor changes its level or pattern.
//
// Created on first use (thread-safe) and registered in spdlog's registry, so a host program
// can reach it with spdlog::get("fanout") to change its level or sinks; a "fanout" logger
// the host registered before the first use is used as it is. As created: one stderr sink
// (colours when stderr is a terminal), warnings and up, pattern "fanout: %^%l%$: %v". The
// command-line programs (fanout, fanout-worker) set its sinks, level and pattern from their
// flags at start-up, before any other thread logs.
// Including this header gives the rest of spdlog's API too (levels, sinks, spdlog::get).
#pragma once

#include <spdlog/spdlog.h>

namespace fanout {

inline constexpr const char* kLoggerName = "fanout";

// Thread-safe, like the logger it returns. Log().warn("...{}", x) as spdlog::warn.
spdlog::logger& Log();

}  // namespace fanout
