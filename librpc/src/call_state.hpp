// Internal: what an rpc::future shares with the transport that settles it, and how a waiting thread may ask that
// transport to read replies on its own thread (see future.hpp).
#pragma once

#include <atomic>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>

#include <duct/codec.hpp>

#include "channel.hpp"

namespace rpc::detail {

struct call_state;

/// A transport whose waiting threads may read its replies themselves.
class reply_reader {
 public:
  virtual ~reply_reader() = default;
  /// Makes progress towards settling `st` on the calling thread: reads replies until `st` is settled or `until`
  /// passes, or waits while another thread reads. May return early (the caller looks at `st` and comes back).
  virtual void read_for(call_state& st, std::optional<clock::time_point> until) = 0;
};

/// How a call's state reaches its transport's reader, which may go away before the state does.
class reader_ref {
 public:
  explicit reader_ref(reply_reader* r) : reader_(r) {}
  /// Runs reader->read_for(st, until). Returns: false if the reader is gone (the transport has closed).
  bool read_for(call_state& st, std::optional<clock::time_point> until);
  /// The reader goes away: no thread enters it from now on. Waits for the threads inside it to leave.
  void detach();

 private:
  std::atomic<reply_reader*> reader_;
  std::atomic<int> inside_{0};  // threads in read_for()
  std::mutex mu_;               // for detach() to wait on idle_
  std::condition_variable idle_;
};

/// One asynchronous call's outcome, settled once by its transport.
struct call_state {
  explicit call_state(std::shared_ptr<reader_ref> r = nullptr) : reader(std::move(r)) {}

  /// Settles the call with its result, or with `e` if set; wakes the threads waiting on it. The first settling wins.
  void settle(duct::value v, std::exception_ptr e);
  [[nodiscard]] bool settled() const noexcept { return done.load(); }
  /// Waits until settled or `until` passes, reading replies meanwhile if the transport lets this thread.
  /// Returns: whether it is settled.
  bool wait(std::optional<clock::time_point> until);
  /// Waits on the condition variable alone (another thread reads). Returns: whether it is settled.
  bool wait_settled(std::optional<clock::time_point> until);

  std::mutex mu;  // for sleeping on cv (see settle())
  std::condition_variable cv;
  std::atomic<int> sleepers{0};  // threads in wait_settled()
  std::atomic<bool> claimed{false};  // a settling has begun: later ones are ignored
  std::atomic<bool> done{false};     // the outcome is in value and error
  // Set while a thread reads replies for this call, sleeping on the transport rather than on `cv`: whoever settles
  // it then must wake that thread. Both flags are sequentially consistent, so that of a reader that looks at `done`
  // before it sleeps and a settler that looks at `led` after settling, at least one sees the other.
  std::atomic<bool> led{false};
  duct::value value;          // written by the settler, read once `done`
  std::exception_ptr error;   // written by the settler, read once `done`
  const std::shared_ptr<reader_ref> reader;  // null: the transport settles on a thread of its own
};

}  // namespace rpc::detail
