// ResultSink (declared in job.h): vetting, saving and writing accepted chunk outputs.
#include "engine/result_sink.h"

#include <cstring>

#include "engine/planned_job.h"
#include "engine/state_store.h"

namespace fanout {
namespace {

// The first line of `text`, with its terminator ('\n'), or all of it.
std::string_view FirstLine(std::string_view text) {
  auto nl = text.find('\n');
  return nl == std::string_view::npos ? text : text.substr(0, nl + 1);
}

// A line for an error message: no terminator, at most 60 bytes.
std::string Shown(std::string_view line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  std::string s(line.substr(0, 60));
  return "'" + s + (line.size() > 60 ? "...'" : "'");
}

}  // namespace

Status ResultSink::Vet(std::string_view output) {
  if (!job_.config.header || output.empty()) return Status::Ok();
  std::string_view line = FirstLine(output);
  if (!header_) {
    header_ = std::string(line);
    if (assembler_) assembler_->SetPrefix(*header_);
    return Status::Ok();
  }
  if (line == *header_) return Status::Ok();
  return Status::Error("output header " + Shown(line) + " differs from " + Shown(*header_) +
                       " of earlier output (--header)");
}

Status ResultSink::Accept(uint64_t chunk, Blob output, double cpu_seconds) {
  stats_.cpu_seconds += cpu_seconds;
  const ChunkSpec& spec = job_.chunks[chunk];
  if (state_) {
    if (Status s = state_->Save(spec, output.view()); !s.ok()) return s;
  }
  if (observer_) {
    job_.input.Release(spec.begin, spec.end);
    return observer_->OnAccepted(chunk, std::move(output));
  }
  size_t skip = job_.config.header ? FirstLine(output.view()).size() : 0;
  // An output that borrows the input (a pass-through task) is written from the mapping,
  // so the pages are released after that write, not before it. A mapping the input file
  // no longer backs makes write(2) fail (EFAULT): the job reports the input's change.
  Status added = assembler_->Add(chunk, std::move(output), skip);
  job_.input.Release(spec.begin, spec.end);
  if (!added.ok()) {
    if (Status changed = job_.input.CheckUnchanged(); !changed.ok()) return changed;
    return added;
  }
  return FeedStored();
}

Status ResultSink::SyncFailures() {
  // An fstat and a stat cost about a microsecond: cheap every few ms, not per chunk.
  constexpr auto kInputCheckInterval = std::chrono::milliseconds(5);
  auto now = std::chrono::steady_clock::now();
  if (now - input_checked_ >= kInputCheckInterval) {
    input_checked_ = now;
    if (Status s = job_.input.CheckUnchanged(); !s.ok()) return s;
  }
  const auto& failed = scheduler_.failed_chunks();
  if (!scheduler_.Aborted()) {
    for (; synced_failures_ < failed.size(); ++synced_failures_) {
      uint64_t chunk = failed[synced_failures_];
      Status s = observer_ ? observer_->OnFailed(chunk) : assembler_->Skip(chunk);
      if (!s.ok()) return s;
    }
  }
  return FeedStored();
}

Status ResultSink::FeedStored() {
  while (next_stored_ < stored_.size()) {
    uint64_t chunk = stored_[next_stored_];
    // In order, a stored output waits for its turn so it is never buffered.
    if (!job_.config.unordered && chunk != assembler_->next_to_write()) return Status::Ok();
    ++next_stored_;
    auto data = state_->Load(job_.chunks[chunk]);
    if (!data.ok()) return data.status();
    if (Status s = Vet(*data); !s.ok()) return s;
    size_t skip = job_.config.header ? FirstLine(*data).size() : 0;
    if (Status s = assembler_->Add(chunk, Blob(std::move(data).value()), skip); !s.ok()) {
      return s;
    }
  }
  return Status::Ok();
}

}  // namespace fanout
