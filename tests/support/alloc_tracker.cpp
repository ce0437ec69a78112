// Replaces the global allocation functions in the test binary so that tests can see the largest single request
// (test::largest_allocation). GCC's mismatched-new-delete warning is off for this file only: these operator new
// functions are malloc-based, so free is the matching release.
#include <cstdlib>
#include <new>

#include "support.hpp"

// Global allocation functions that record the largest request, so tests can show that a hostile header made us
// allocate nothing large.
void* operator new(std::size_t n) {
  test::note_allocation(n);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void* operator new[](std::size_t n) { return ::operator new(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  test::note_allocation(n);
  return std::malloc(n ? n : 1);
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return ::operator new(n, t); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
