/* A fanout task plugin in plain C (fanout/plugin.h): `wordcount` outputs one line per
 * chunk, "LINES WORDS BYTES" like `wc`. Build it as a shared library and load it with
 *   fanout run --plugin ./wordcount_plugin.so wordcount < input
 * (the coordinator and its local workers load it), or fanout-worker --plugin for remote
 * workers, or PoolOptions::plugins from C++. */
#include <fanout/plugin.h>
#include <stdio.h>

static int wordcount(const struct fanout_plugin_chunk* chunk,
                     const struct fanout_plugin_output* out) {
  unsigned long lines = 0, words = 0;
  int in_word = 0;
  for (size_t i = 0; i < chunk->size; ++i) {
    char c = chunk->data[i];
    int space = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',';
    if (c == '\n') ++lines;
    if (!space && !in_word) ++words;
    in_word = !space;
  }
  char line[96];
  int n = snprintf(line, sizeof line, "%lu %lu %lu\n", lines, words, (unsigned long)chunk->size);
  out->append(out->context, line, (size_t)n);
  return 0;
}

static const struct fanout_plugin_task tasks[] = {
    {"wordcount", "lines, words and bytes of each chunk (like wc)", wordcount},
};
static const struct fanout_plugin_info info = {FANOUT_PLUGIN_ABI_VERSION, 1, tasks};

FANOUT_PLUGIN_EXPORT const struct fanout_plugin_info* fanout_plugin(void) { return &info; }
