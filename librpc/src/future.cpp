// rpc::future and the call state it shares with its transport. See future.hpp and call_state.hpp.
#include <rpc/future.hpp>

#include "call_state.hpp"

namespace rpc {
namespace detail {

// Entering and leaving are an atomic count each, not a lock: every wait on a future goes through here. The count and
// the reader are sequentially consistent, so of a thread entering (count, then reader) and detach() (reader, then
// count), at least one sees the other.
bool reader_ref::read_for(call_state& st, std::optional<clock::time_point> until) {
  inside_.fetch_add(1);
  struct leave {
    reader_ref& r;
    ~leave() {
      if (r.inside_.fetch_sub(1) == 1 && r.reader_.load() == nullptr) {  // the last one out of a detached reader
        std::lock_guard lock(r.mu_);
        r.idle_.notify_all();
      }
    }
  } on_leave{*this};
  reply_reader* const reader = reader_.load();
  if (!reader) return false;
  reader->read_for(st, until);
  return true;
}

void reader_ref::detach() {
  reader_.store(nullptr);
  std::unique_lock lock(mu_);
  idle_.wait(lock, [&] { return inside_.load() == 0; });
}

// Settling takes no lock unless a thread sleeps on `cv`: the thread that reads a reply is usually the one waiting for
// it, or nobody waits yet. `done` and `sleepers` are sequentially consistent, so of a settler (done, then sleepers)
// and a sleeper (sleepers, then done, under `mu`), at least one sees the other; a settler that sees a sleeper takes
// `mu` before notifying, so the notice cannot fall between the sleeper's look at `done` and its wait.
void call_state::settle(duct::value v, std::exception_ptr e) {
  if (claimed.exchange(true)) return;  // the first settling wins
  value = std::move(v);
  error = std::move(e);
  done.store(true);
  if (sleepers.load() == 0) return;
  { std::lock_guard lock(mu); }
  cv.notify_all();
}

bool call_state::wait_settled(std::optional<clock::time_point> until) {
  std::unique_lock lock(mu);
  ++sleepers;
  struct awake {
    std::atomic<int>& n;
    ~awake() { --n; }
  } on_wake{sleepers};
  auto is_done = [&] { return done.load(); };
  if (!until) {
    cv.wait(lock, is_done);
    return true;
  }
  return cv.wait_until(lock, *until, is_done);
}

bool call_state::wait(std::optional<clock::time_point> until) {
  // The reader gets a look even when `until` has passed: it then takes what has arrived without sleeping. A caller
  // polling with wait_for(0) would otherwise never see its reply before the transport's own thread read it.
  while (!settled()) {
    if (!reader || !reader->read_for(*this, until)) return wait_settled(until);
    if (until && clock::now() >= *until) return settled();
  }
  return true;
}

}  // namespace detail

future future::failed(std::exception_ptr error) {
  auto st = std::make_shared<detail::call_state>();
  st->settle({}, std::move(error));
  return future(std::move(st));
}

duct::value future::get() {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  std::shared_ptr<detail::call_state> st = std::move(state_);
  st->wait(std::nullopt);
  if (st->error) std::rethrow_exception(st->error);
  return std::move(st->value);
}

void future::wait() const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  state_->wait(std::nullopt);
}

std::future_status future::wait_until(std::chrono::steady_clock::time_point until) const {
  if (!state_) throw std::future_error(std::future_errc::no_state);
  return state_->wait(until) ? std::future_status::ready : std::future_status::timeout;
}

}  // namespace rpc
