// rpc::future: the outcome of an asynchronous call (client::async_call), read once, like std::future<duct::value>.
//
//   rpc::future later = c.async_call("crunch", 7);
//   ...
//   duct::value v = later.get();  // the result, or the call's error thrown
//
// Unlike std::future, a thread that waits on it may do the client's reading itself: over ZeroMQ the first thread
// waiting on an unsettled call reads the client's socket until its own reply is in, settling any other replies it
// meets on the way, so a reply wakes its waiter directly instead of going through the client's I/O thread. While
// one thread reads, others wait for it to settle their calls. Dropping a future does not cancel its call: the call
// goes on and its outcome is discarded.
#pragma once

#include <chrono>
#include <exception>
#include <future>
#include <memory>

#include <duct/codec.hpp>

namespace rpc {
namespace detail {
struct call_state;
struct access;  // how the library makes futures (librpc/src/access.hpp)
}

class future {
 public:
  /// A future with no call (valid() is false), as a default-constructed std::future.
  future() noexcept = default;
  /// A future already settled with `error` (a call that could not even start).
  static future failed(std::exception_ptr error);

  /// Whether this future has a call whose outcome has not been taken with get().
  [[nodiscard]] bool valid() const noexcept { return state_ != nullptr; }

  /// Waits for the outcome and takes it; the future is no longer valid() afterwards.
  /// Returns: the call's result. Throws: the call's error (what client::call() would throw);
  /// std::future_error(no_state) if !valid().
  duct::value get();

  /// Waits for the outcome without taking it. Throws: std::future_error(no_state) if !valid().
  void wait() const;
  /// Waits up to `limit`. Returns: ready, or timeout. Throws: std::future_error(no_state) if !valid().
  template <class Rep, class Period>
  std::future_status wait_for(std::chrono::duration<Rep, Period> limit) const {
    return wait_until(std::chrono::steady_clock::now() +
                      std::chrono::ceil<std::chrono::steady_clock::duration>(limit));
  }
  /// Waits until `until`. Returns: ready, or timeout. Throws: std::future_error(no_state) if !valid().
  std::future_status wait_until(std::chrono::steady_clock::time_point until) const;

 private:
  friend struct detail::access;
  explicit future(std::shared_ptr<detail::call_state> state) noexcept : state_(std::move(state)) {}
  std::shared_ptr<detail::call_state> state_;
};

}  // namespace rpc
