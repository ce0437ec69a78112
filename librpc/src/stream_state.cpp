// Internal: a streamed reply's buffer and credit on the client side, and rpc::source over it. See stream_state.hpp.
#include "stream_state.hpp"

#include <rpc/stream.hpp>

namespace rpc {
namespace detail {

void stream_state::attach(grant_fn grant, stop_fn stop) {
  std::lock_guard lock(cb_mu_);
  grant_ = std::move(grant);
  stop_ = std::move(stop);
}

void stream_state::detach() noexcept {
  std::lock_guard lock(cb_mu_);
  grant_ = nullptr;
  stop_ = nullptr;
}

void stream_state::push(duct::value item, std::size_t size) {
  std::lock_guard lock(mu_);
  if (ended_ || error_) return;  // the consumer gave up meanwhile
  // A peer that sends beyond its credit is tolerated (the items are kept) but earns no more credit until the
  // consumer catches up, so what it can push beyond the window stays bounded by what it sent unasked.
  (void)window_.on_arrival(size);
  items_.push_back(std::move(item));
  ready_.notify_one();
}

void stream_state::push_many(std::vector<duct::value>& items, std::size_t size) {
  std::lock_guard lock(mu_);
  if (ended_ || error_ || items.empty()) return;
  const std::size_t each = size / items.size();
  for (auto& item : items) {
    (void)window_.on_arrival(each);  // tolerated beyond the credit, as in push()
    items_.push_back(std::move(item));
  }
  ready_.notify_one();
}

bool stream_state::offer(duct::value item) {
  std::lock_guard lock(mu_);
  if (ended_ || error_) return true;  // the consumer gave up meanwhile: not the peer's fault
  if (window_.outstanding() == 0) return false;
  (void)window_.on_arrival();
  items_.push_back(std::move(item));
  ready_.notify_one();
  return true;
}

std::size_t stream_state::open_window() {
  std::lock_guard lock(mu_);
  return window_.top_up();
}

std::exception_ptr stream_state::error() {
  std::lock_guard lock(mu_);
  return error_;
}

void stream_state::end() {
  std::lock_guard lock(mu_);
  if (!error_) ended_ = true;
  ready_.notify_all();
}

void stream_state::finish(duct::value result) {
  std::lock_guard lock(mu_);
  if (ended_ || error_) return;
  result_ = std::move(result);
  ended_ = true;
  ready_.notify_all();
}

duct::value stream_state::take_result() {
  std::lock_guard lock(mu_);
  if (error_) std::rethrow_exception(error_);
  if (!result_) throw protocol_error(where_ + ": the call ended without a result");
  duct::value r = std::move(*result_);
  result_.reset();
  return r;
}

void stream_state::fail(std::exception_ptr e) {
  std::lock_guard lock(mu_);
  if (ended_ || error_) return;
  error_ = std::move(e);
  ready_.notify_all();
}

std::optional<duct::value> stream_state::next(std::optional<clock::time_point> deadline) {
  std::size_t grant = 0;
  std::optional<duct::value> item;
  {
    std::unique_lock lock(mu_);
    auto ready = [&] { return !items_.empty() || ended_ || error_; };
    if (deadline) {
      if (!ready_.wait_until(lock, *deadline, ready)) {
        lock.unlock();
        cancel(std::make_exception_ptr(timeout_error(where_ + ": nothing arrived within the time limit")));
        lock.lock();
      }
    } else {
      ready_.wait(lock, ready);
    }
    if (!items_.empty()) {  // items that came before the end, or before the error that ended it, come first
      item = std::move(items_.front());
      items_.pop_front();
      grant = window_.on_consumed();
    } else if (error_) {
      std::rethrow_exception(error_);
    } else {
      return std::nullopt;
    }
  }
  if (grant) call_grant(grant);
  return item;
}

void stream_state::cancel(std::exception_ptr why) noexcept {
  {
    std::lock_guard lock(mu_);
    if (ended_ || error_) return;
    error_ = why ? why : std::make_exception_ptr(cancelled_error("Cancelled", where_ + ": the stream was cancelled", ""));
    items_.clear();
    ready_.notify_all();
  }
  call_stop();
}

void stream_state::call_grant(std::size_t n) {
  std::lock_guard lock(cb_mu_);
  if (grant_) grant_(n);
}

void stream_state::call_stop() noexcept {
  std::lock_guard lock(cb_mu_);
  if (!stop_) return;
  try {
    stop_();
  } catch (...) {
    // the transport could not tell the server: it notices the silence instead
  }
  grant_ = nullptr;
  stop_ = nullptr;
}

}  // namespace detail

source::source(std::shared_ptr<detail::stream_state> state) noexcept : state_(std::move(state)) {}
source::source(source&&) noexcept = default;
source& source::operator=(source&& other) noexcept {
  if (this != &other) {
    cancel();
    state_ = std::move(other.state_);
  }
  return *this;
}
source::~source() { cancel(); }

std::optional<duct::value> source::next() {
  if (!state_) throw error("next() on a moved-from rpc::source");
  return state_->next(std::nullopt);
}

std::optional<duct::value> source::next_for(std::chrono::milliseconds limit) {
  if (!state_) throw error("next_for() on a moved-from rpc::source");
  return state_->next(detail::clock::now() + limit);
}

void source::cancel() noexcept {
  if (state_) state_->cancel();
}

}  // namespace rpc
