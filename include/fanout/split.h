// fanout/split.h: cutting data into chunks and joining results, the two ends of the
// parallelize_dataframe recipe (split, Pool::map, concat). array_split follows
// numpy.array_split: n parts whose sizes differ by at most one, larger parts first.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <iterator>
#include <string>
#include <string_view>
#include <vector>

#include "fanout/export.h"

namespace fanout {

// Sizes of `count` items cut into `parts` (> 0) parts: larger first, e.g. (10, 3) -> 4,3,3.
inline std::vector<size_t> array_split_sizes(size_t count, size_t parts) {
  std::vector<size_t> sizes(parts, parts ? count / parts : 0);
  for (size_t i = 0; parts && i < count % parts; ++i) ++sizes[i];
  return sizes;
}

// `container` cut into `parts` consecutive pieces (some empty when parts > size).
template <typename Container>
std::vector<Container> array_split(const Container& container, size_t parts) {
  std::vector<Container> out;
  auto it = std::begin(container);
  for (size_t size : array_split_sizes(std::size(container), parts)) {
    auto end = std::next(it, static_cast<std::ptrdiff_t>(size));
    out.emplace_back(it, end);
    it = end;
  }
  return out;
}

// `text` cut into `parts` chunks of whole lines (terminators kept), numpy sizes by line
// count; concatenating the chunks gives `text` back. Empty chunks are dropped.
FANOUT_API std::vector<std::string> split_lines(std::string_view text, size_t parts);

// The pieces joined in order: concat(pool.map(...)) is the whole job's output.
template <typename Container>
Container concat(const std::vector<Container>& pieces) {
  Container out;
  for (const Container& piece : pieces)
    out.insert(std::end(out), std::begin(piece), std::end(piece));
  return out;
}

}  // namespace fanout
