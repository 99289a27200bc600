// Microbenchmarks (Google Benchmark) for the coordinator's per-chunk hot paths: header
// encode/decode and line chunking. Run: build/bin/fanout_micro_benchmark
#include <benchmark/benchmark.h>

#include "common/chunking.h"
#include "common/codec.h"

namespace fanout {
namespace {

void BM_EncodeTask(benchmark::State& state) {
  TaskMsg t{"job", 12345, 1, "exec", {"sh", "-c", "cat"}, std::nullopt, 100};
  for (auto _ : state) benchmark::DoNotOptimize(EncodeHeader(t));
}
BENCHMARK(BM_EncodeTask);

void BM_DecodeResult(benchmark::State& state) {
  std::string bytes = EncodeHeader(ResultMsg{12345, 1, true, "", 0.25, 0.5});
  for (auto _ : state) benchmark::DoNotOptimize(DecodeHeader(bytes.data(), bytes.size()));
}
BENCHMARK(BM_DecodeResult);

void BM_PlanLineChunks(benchmark::State& state) {
  std::string data;
  while (data.size() < (64u << 20)) data += "a line of about forty bytes of text....\n";
  for (auto _ : state) {
    benchmark::DoNotOptimize(PlanLineChunks(data, {static_cast<uint64_t>(state.range(0)), 0}, 1));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * data.size()));
}
BENCHMARK(BM_PlanLineChunks)->Arg(8)->Arg(4096);

}  // namespace
}  // namespace fanout

BENCHMARK_MAIN();
