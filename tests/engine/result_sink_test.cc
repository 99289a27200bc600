// The ResultSink with outputs that borrow the input's mapping (a pass-through task's in
// serial and threads modes, an echo written at once in processes mode): only the chunk
// written at once may borrow, and an input truncated under a borrowed output fails the
// job as an input change, without a fault, whether the output is copied into the writer's
// buffer (a small one) or written from the mapping itself (a big one).
#include "engine/result_sink.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include "common/output_file.h"
#include "engine/result_assembler.h"
#include "tasks/builtin_tasks.h"
#include "tests/support/test_support.h"

namespace fanout {
namespace {

const TaskDef& Identity() {
  TaskRegistry& registry = TaskRegistry::Global();
  RegisterBuiltinTasks(registry);
  return **ResolveTask(registry, "identity", {});
}

// Two chunks of `half` bytes of lines each, over a file of the test's.
struct TwoChunks {
  explicit TwoChunks(size_t half) {
    std::string line = "a line of the input, not short at all\n";
    std::string text;
    while (text.size() < 2 * half) text += line;
    text.resize(2 * half);
    text.back() = '\n';
    path = dir.File("in");
    testing::WriteFile(path, text);
    auto in = JobInput::Open(path);
    EXPECT_TRUE(in.ok()) << in.status().message();
    job.emplace(PlannedJob{config, Identity(), std::move(in).value(), {}, {}});
    for (uint64_t i = 0; i < 2; ++i) {
      ChunkSpec c;
      c.id = i;
      c.begin = i * half;
      c.end = (i + 1) * half;
      job->chunks.push_back(c);
    }
    auto f = OutputFile::Open(dir.File("out"));
    EXPECT_TRUE(f.ok());
    out.emplace(std::move(f).value());
    scheduler.emplace(2, config.scheduler);
    assembler.emplace(2, true, &*out);
    sink.emplace(*job, *scheduler, *assembler, stats, nullptr, std::vector<uint64_t>{});
  }
  testing::TempDir dir;
  std::string path;
  JobConfig config;
  std::optional<PlannedJob> job;
  std::optional<OutputFile> out;
  std::optional<Scheduler> scheduler;
  std::optional<ResultAssembler> assembler;
  RunStats stats;
  std::optional<ResultSink> sink;
};

TEST(ResultSinkTest, OnlyTheChunkWrittenAtOnceMayBorrowTheInput) {
  TwoChunks t(4096);
  EXPECT_TRUE(t.sink->WritesAtOnce(0));
  EXPECT_FALSE(t.sink->WritesAtOnce(1));  // held for order: a view would keep its pages
  ASSERT_TRUE(t.sink->Accept(0, Blob::Borrowed(t.job->Bytes(0)), 0).ok());
  EXPECT_TRUE(t.sink->WritesAtOnce(1));
}

TEST(ResultSinkTest, ABorrowedOutputOfATruncatedInputFailsAsAnInputChange) {
  // 64 KiB goes through the writer's buffer (a copy from the mapping); 4 MiB is written
  // from the mapping by write(2).
  for (size_t half : {size_t{64} << 10, size_t{4} << 20}) {
    SCOPED_TRACE(half);
    TwoChunks t(half);
    ASSERT_EQ(truncate(t.path.c_str(), 1000), 0);
    Status s = t.sink->Accept(0, Blob::Borrowed(t.job->Bytes(0)), 0);
    if (s.ok()) s = t.sink->Flush();
    if (s.ok()) s = t.job->input.CheckUnchanged();
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("changed during the job"), std::string::npos) << s.message();
  }
}

}  // namespace
}  // namespace fanout
