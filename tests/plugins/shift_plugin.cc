// A test plugin (fanout/plugin.h, ABI version 1) built once per FANOUT_SHIFT (1..8): task
// `shiftN` moves each lowercase letter N places on. Eight distinct plugins, so that eight
// threads can each load a different one while the others run jobs.
#include "fanout/plugin.h"

#ifndef FANOUT_SHIFT
#error "FANOUT_SHIFT must be defined"
#endif
#define FANOUT_STR2(x) #x
#define FANOUT_STR(x) FANOUT_STR2(x)

namespace {

int Shift(const fanout_plugin_chunk* chunk, const fanout_plugin_output* out) {
  for (size_t i = 0; i < chunk->size; ++i) {
    char c = chunk->data[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + FANOUT_SHIFT) % 26);
    out->append(out->context, &c, 1);
  }
  return 0;
}

const fanout_plugin_task kTasks[] = {
    {"shift" FANOUT_STR(FANOUT_SHIFT), "moves lowercase letters on", Shift},
};
const fanout_plugin_info kInfo = {FANOUT_PLUGIN_ABI_VERSION, 1, kTasks};

}  // namespace

extern "C" FANOUT_PLUGIN_EXPORT const fanout_plugin_info* fanout_plugin(void) { return &kInfo; }
