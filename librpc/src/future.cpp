// rpc::future and the call state it shares with its transport. See future.hpp and call_state.hpp.
#include <rpc/future.hpp>

#include "call_state.hpp"

namespace rpc {
namespace detail {

bool reader_ref::read_for(call_state& st, std::optional<clock::time_point> until) {
  {
    std::lock_guard lock(mu_);
    if (!reader_) return false;
    ++inside_;
  }
  struct leave {
    reader_ref& r;
    ~leave() {
      std::lock_guard lock(r.mu_);
      if (--r.inside_ == 0) r.idle_.notify_all();
    }
  } on_leave{*this};
  reader_->read_for(st, until);
  return true;
}

void reader_ref::detach() {
  std::unique_lock lock(mu_);
  reader_ = nullptr;
  idle_.wait(lock, [&] { return inside_ == 0; });
}

void call_state::settle(duct::value v, std::exception_ptr e) {
  {
    std::lock_guard lock(mu);
    if (done.load(std::memory_order_relaxed)) return;
    value = std::move(v);
    error = std::move(e);
    done.store(true);
  }
  cv.notify_all();
}

bool call_state::wait_settled(std::optional<clock::time_point> until) {
  std::unique_lock lock(mu);
  auto is_done = [&] { return done.load(std::memory_order_relaxed); };
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
