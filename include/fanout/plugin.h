/* fanout/plugin.h: the C ABI of task plugins, shared libraries that `fanout-worker
 * --plugin libmytasks.so` (and fanout::worker_main) load with dlopen(). A plugin defines
 *     FANOUT_PLUGIN_EXPORT const struct fanout_plugin_info* fanout_plugin(void) { ... }
 * (declared below, so it is exported also from a plugin built with -fvisibility=hidden)
 * returning a static table: the ABI version it was built for and its tasks. A worker
 * refuses a plugin of another ABI version with a clear message (exit status 2). Plain C
 * so plugins need neither libfanout nor the same C++ standard library; the tables must
 * stay valid while the process runs, and task functions may run on several threads. */
#ifndef FANOUT_PLUGIN_H_
#define FANOUT_PLUGIN_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FANOUT_PLUGIN_ABI_VERSION 1u
#define FANOUT_PLUGIN_ENTRY "fanout_plugin"

/* Marks the entry point as exported from the plugin's shared library. */
#if defined(__GNUC__) || defined(__clang__)
#define FANOUT_PLUGIN_EXPORT __attribute__((visibility("default")))
#else
#define FANOUT_PLUGIN_EXPORT
#endif

/* One chunk: its records byte for byte (a range chunk is one integer per line). */
struct fanout_plugin_chunk {
  const char* data;
  size_t size;
  uint64_t chunk_id;
  uint32_t attempt;
  const char* const* args; /* the job's task arguments, NUL-terminated strings */
  size_t arg_count;
};

/* Where a task writes: append output bytes any number of times; on failure call fail()
 * with a one-line reason and return non-zero. */
struct fanout_plugin_output {
  void* context;
  void (*append)(void* context, const char* data, size_t size);
  void (*fail)(void* context, const char* message);
};

/* Returns 0 on success. */
typedef int (*fanout_plugin_task_fn)(const struct fanout_plugin_chunk* chunk,
                                     const struct fanout_plugin_output* output);

struct fanout_plugin_task {
  const char* name;
  const char* summary;
  fanout_plugin_task_fn run;
};

struct fanout_plugin_info {
  uint32_t abi_version; /* FANOUT_PLUGIN_ABI_VERSION when the plugin was built */
  uint32_t task_count;
  const struct fanout_plugin_task* tasks;
};

typedef const struct fanout_plugin_info* (*fanout_plugin_entry_fn)(void);

/* The entry point every plugin defines (FANOUT_PLUGIN_ENTRY). */
FANOUT_PLUGIN_EXPORT const struct fanout_plugin_info* fanout_plugin(void);

#ifdef __cplusplus
}
#endif

#endif /* FANOUT_PLUGIN_H_ */
