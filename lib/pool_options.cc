// fanout::PoolOptions (fanout/pool.h): getters and chainable setters over a PoolSettings
// (lib/pool_settings.h) held by pointer.
#include <memory>
#include <utility>

#include "fanout/pool.h"
#include "lib/pool_settings.h"

namespace fanout {
namespace {

const PoolSettings& Defaults() {
  static const PoolSettings defaults;
  return defaults;
}

// The settings to write to; a moved-from PoolOptions gets fresh defaults first.
PoolSettings& Writable(std::unique_ptr<PoolSettings>& settings) {
  if (!settings) settings = std::make_unique<PoolSettings>();
  return *settings;
}

}  // namespace

const PoolSettings& SettingsOf(const PoolOptions& options) {
  return options.settings_ ? *options.settings_ : Defaults();
}

PoolOptions::PoolOptions() : settings_(std::make_unique<PoolSettings>()) {}
PoolOptions::PoolOptions(const PoolOptions& other)
    : settings_(std::make_unique<PoolSettings>(SettingsOf(other))) {}
PoolOptions::PoolOptions(PoolOptions&& other) noexcept = default;
PoolOptions& PoolOptions::operator=(const PoolOptions& other) {
  if (this != &other) Writable(settings_) = SettingsOf(other);
  return *this;
}
PoolOptions& PoolOptions::operator=(PoolOptions&& other) noexcept = default;
PoolOptions::~PoolOptions() = default;

#define FANOUT_POOL_OPTION(type, name)                              \
  type PoolOptions::name() const { return SettingsOf(*this).name; } \
  PoolOptions& PoolOptions::name(type value) {                      \
    Writable(settings_).name = std::move(value);                    \
    return *this;                                                   \
  }
#define FANOUT_POOL_OPTION_REF(type, name)                                 \
  const type& PoolOptions::name() const { return SettingsOf(*this).name; } \
  PoolOptions& PoolOptions::name(type value) {                             \
    Writable(settings_).name = std::move(value);                           \
    return *this;                                                          \
  }

FANOUT_POOL_OPTION(PoolMode, mode)
FANOUT_POOL_OPTION(uint32_t, workers)
FANOUT_POOL_OPTION_REF(std::string, endpoint)
FANOUT_POOL_OPTION(uint32_t, min_workers)
FANOUT_POOL_OPTION(std::chrono::milliseconds, wait_timeout)
FANOUT_POOL_OPTION(uint32_t, retries)
FANOUT_POOL_OPTION(std::chrono::milliseconds, timeout)
FANOUT_POOL_OPTION_REF(std::string, worker_binary)
FANOUT_POOL_OPTION_REF(std::vector<std::string>, worker_args)
FANOUT_POOL_OPTION_REF(std::vector<std::string>, plugins)
FANOUT_POOL_OPTION_REF(std::string, curve_secret)
FANOUT_POOL_OPTION_REF(std::string, authorized_keys)
FANOUT_POOL_OPTION(bool, insecure)
FANOUT_POOL_OPTION_REF(std::string, server)
FANOUT_POOL_OPTION_REF(std::string, server_key)
FANOUT_POOL_OPTION_REF(std::string, client_secret)
FANOUT_POOL_OPTION(int32_t, priority)

#undef FANOUT_POOL_OPTION
#undef FANOUT_POOL_OPTION_REF

}  // namespace fanout
