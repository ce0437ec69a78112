// Shared by the fuzz targets that read their input as a script: a byte per decision, and runs of raw bytes. Past
// the input's end every byte reads as 0 and every run is empty, so any input is a whole script.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>

namespace fuzz {

struct script {
  std::span<const std::uint8_t> in;
  std::uint8_t next() {
    if (in.empty()) return 0;
    const std::uint8_t b = in.front();
    in = in.subspan(1);
    return b;
  }
  std::span<const std::uint8_t> bytes(std::size_t n) {
    n = std::min(n, in.size());
    auto out = in.first(n);
    in = in.subspan(n);
    return out;
  }
};

}  // namespace fuzz
