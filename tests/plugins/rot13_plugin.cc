// A test plugin (fanout/plugin.h, ABI version 1): `rot13` rotates letters and `refuse`
// fails every chunk, naming its first argument. Built as a MODULE, loaded with dlopen.
#include <cstring>

#include "fanout/plugin.h"

namespace {

int Rot13(const fanout_plugin_chunk* chunk, const fanout_plugin_output* out) {
  for (size_t i = 0; i < chunk->size; ++i) {
    char c = chunk->data[i];
    if (c >= 'a' && c <= 'z') c = static_cast<char>('a' + (c - 'a' + 13) % 26);
    if (c >= 'A' && c <= 'Z') c = static_cast<char>('A' + (c - 'A' + 13) % 26);
    out->append(out->context, &c, 1);
  }
  return 0;
}

int Refuse(const fanout_plugin_chunk* chunk, const fanout_plugin_output* out) {
  out->fail(out->context, chunk->arg_count > 0 ? chunk->args[0] : "refused");
  return 1;
}

const fanout_plugin_task kTasks[] = {
    {"rot13", "rotates letters by 13", Rot13},
    {"refuse", "fails every chunk with its first argument", Refuse},
};
const fanout_plugin_info kInfo = {FANOUT_PLUGIN_ABI_VERSION, 2, kTasks};

}  // namespace

extern "C" FANOUT_PLUGIN_EXPORT const fanout_plugin_info* fanout_plugin(void) { return &kInfo; }
