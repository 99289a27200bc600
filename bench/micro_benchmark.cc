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

// A TASKS of 64 attempts and a RESULTS of 64: per attempt, what batching costs to encode
// and decode (items processed = attempts).
TaskBatch Batch64() {
  TaskBatch b{"job", "identity", {}, {}, {}, {}, {}};
  for (uint64_t c = 0; c < 64; ++c) {
    b.chunks.push_back(1000 + c);
    b.attempts.push_back(1);
    b.records.push_back(1);
    b.bytes.push_back(7);
  }
  return b;
}

void BM_EncodeTasks64(benchmark::State& state) {
  TaskBatch b = Batch64();
  for (auto _ : state) benchmark::DoNotOptimize(EncodeHeader(b));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 64));
}
BENCHMARK(BM_EncodeTasks64);

void BM_DecodeResults64(benchmark::State& state) {
  ResultBatch r;
  for (uint64_t c = 0; c < 64; ++c) {
    r.results.push_back(ResultMsg{1000 + c, 1, true, "", 0.000001, 0.000002});
    r.bytes.push_back(7);
  }
  std::string bytes = EncodeHeader(r);
  for (auto _ : state) benchmark::DoNotOptimize(DecodeHeader(bytes.data(), bytes.size()));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * 64));
}
BENCHMARK(BM_DecodeResults64);

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
