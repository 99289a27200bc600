// InputMap: a local worker's read-only view of the coordinator's input file, for chunks
// passed by reference (common/PROTOCOL.md, "Local workers: input by reference"). The file
// named in WELCOME is opened and mapped once per session (MAP_SHARED, PROT_READ); a TASK's
// slice becomes a zmq::message_t pointing into the mapping (no copy) whose release drops
// the chunk's whole pages from this process, so the worker's resident memory stays bounded
// on inputs of many gigabytes. The mapping lives until its last slice is released, even if
// the loop maps another file meanwhile. Open/Close/Slice are called from the loop thread;
// slices may be released on any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <zmq.hpp>

#include "common/protocol.h"
#include "common/status.h"

namespace fanout {

class InputMap {
 public:
  // Maps `path` (replacing any earlier file). A failure is kept: every later Slice reports
  // it, naming the file and errno, until the next Open or Close.
  void Open(const std::string& path);
  // Back to "no file": Slice reports that no input file was announced.
  void Close();
  // The bytes of `slice` (the file's first `header` bytes, then [offset, offset + length))
  // as a payload for the task. Without a header nothing is copied. An error (file not
  // mapped, slice out of bounds) is a one-line reason for a failed attempt.
  Result<zmq::message_t> Slice(const FileSlice& slice) const;

  struct Mapping;  // shared with the slices handed out

 private:
  std::shared_ptr<Mapping> mapping_;
  std::string path_;
  std::string error_;  // why Open failed ("" when mapped or never opened)
};

}  // namespace fanout
