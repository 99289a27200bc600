// PoolSettings: the plain fields behind a fanout::PoolOptions (fanout/pool.h), what the
// library's code reads (RunBatch). Internal to libfanout: adding a field here changes no
// public type. Documentation of each field: the getter of the same name in fanout/pool.h.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "fanout/pool.h"

namespace fanout {

struct PoolSettings {
  PoolMode mode = PoolMode::kProcesses;
  uint32_t workers = 0;
  std::string endpoint;
  uint32_t min_workers = 0;
  std::chrono::milliseconds wait_timeout{0};
  uint32_t retries = 0;
  std::chrono::milliseconds timeout{0};
  std::string worker_binary;
  std::vector<std::string> worker_args;
  std::vector<std::string> plugins;
  std::string curve_secret;
  std::string authorized_keys;
  bool insecure = false;
  std::string server;
  std::string server_key;
  std::string client_secret;
  int32_t priority = 0;
};

// The settings `options` holds (the defaults for a moved-from PoolOptions). Valid while
// `options` is alive and unchanged.
const PoolSettings& SettingsOf(const PoolOptions& options);

}  // namespace fanout
