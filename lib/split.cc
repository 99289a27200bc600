// split_lines (fanout/split.h).
#include "fanout/split.h"

#include "common/chunking.h"

namespace fanout {

std::vector<std::string> split_lines(std::string_view text, size_t parts) {
  std::vector<std::string> out;
  if (parts == 0) return out;
  ChunkingOptions cut;
  cut.chunks = parts;
  for (const ChunkSpec& c : PlanLineChunks(text, cut, parts)) {
    out.emplace_back(text.substr(c.begin, c.bytes()));
  }
  return out;
}

}  // namespace fanout
