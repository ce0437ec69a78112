// The test binaries' main: Catch2's, except that a run in which a case was skipped (test::skip) and none failed
// exits 77, which ctest reports as skipped. A skip ends only its own case, so a binary run by hand runs them all.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "support.hpp"

int main(int argc, char** argv) {
  const int failed = Catch::Session().run(argc, argv);
  return failed == 0 && test::skipped_any() ? 77 : failed;
}
