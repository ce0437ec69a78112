// Helpers shared by the Catch2 suites: hex, captured vectors, optional peers, allocation tracking.
#pragma once

#include <atomic>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <duct/buffer.hpp>

namespace test {

/// Lowercase hex of `bytes`, and back.
std::string hex(std::span<const std::byte> bytes);
inline std::string hex(const duct::buffer& b) { return hex(b.span()); }
duct::buffer unhex(std::string_view text);
/// Lowercase hex of the SHA-256 of `data`.
std::string sha256_hex(std::string_view data);

/// The lines of tests/vectors/NAME (JSON Lines), each parsed.
std::vector<nlohmann::json> load_vectors(std::string_view name);

/// Path of the duct-test-peer helper program.
std::string peer_program();
/// Path of a Python helper script in tests/duct/peers.
std::string peer_script(std::string_view name);

/// Path of python3, or empty.
std::string python3();

/// Marks the running test case skipped and says why on stderr. The test binary (tests/support/main.cpp) then exits
/// 77, which ctest reports as a skip, if no case failed; the run's other cases go on. Under CI=true a missing peer
/// is a failure instead. Throws: std::runtime_error under CI=true.
void skip(const std::string& why);
/// Whether any case of this run was skipped.
bool skipped_any() noexcept;

}  // namespace test

/// Ends the current TEST_CASE as skipped, loudly, unless `cond` holds (see test::skip).
#define TEST_SKIP_UNLESS(cond, why) \
  do {                              \
    if (!(cond)) {                  \
      ::test::skip(why);            \
      return;                       \
    }                               \
  } while (false)

/// Skips the current TEST_CASE unless python3 is there.
#define TEST_REQUIRE_PYTHON() \
  TEST_SKIP_UNLESS(!::test::python3().empty(), "python3 not found; install Debian's python3 to run the live-peer tests")

namespace test {

/// A fresh private directory for the test's socket files, removed with everything in it on destruction.
class temp_dir {
 public:
  temp_dir();
  ~temp_dir();
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  [[nodiscard]] const std::string& path() const noexcept { return path_; }
  [[nodiscard]] std::string file(std::string_view name) const { return path_ + "/" + std::string(name); }

 private:
  std::string path_;
};

/// Waits (bounded, by looking, not by sleeping a fixed time) until the thread whose id `tid` publishes is asleep in
/// the kernel, i.e. blocked in the call the test wants to interrupt. Throws after 10 s.
void wait_until_sleeping(const std::atomic<int>& tid);

/// Largest single heap allocation since the last reset, across all threads (global operator new is replaced in the
/// test binary to count it).
void note_allocation(std::size_t n);
std::size_t largest_allocation();
void reset_largest_allocation();

}  // namespace test
