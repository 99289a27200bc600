// A test plugin that claims a future ABI version (2): workers must refuse to load it.
#include "fanout/plugin.h"

namespace {
const fanout_plugin_info kInfo = {FANOUT_PLUGIN_ABI_VERSION + 1, 0, nullptr};
}  // namespace

extern "C" FANOUT_PLUGIN_EXPORT const fanout_plugin_info* fanout_plugin(void) { return &kInfo; }
