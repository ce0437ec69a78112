// Internal: a chunked request's credit and end on the client side. See upload_state.hpp.
#include "upload_state.hpp"

#include "reply.hpp"

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/stream.hpp>

namespace rpc::detail {

void upload_state::attach(send_fn send) {
  std::lock_guard lock(cb_mu_);
  send_ = std::move(send);
}

void upload_state::detach() noexcept {
  std::lock_guard lock(cb_mu_);
  send_ = nullptr;
}

void upload_state::grant(std::int64_t n) {
  std::lock_guard lock(mu_);
  announced_ = true;
  credit_.grant(n);
  ready_.notify_all();
}

void upload_state::close(std::exception_ptr why) noexcept {
  {
    std::lock_guard lock(mu_);
    if (closed_) return;
    closed_ = true;
    why_ = std::move(why);
    ready_.notify_all();
  }
  stop_.request_stop();
}

bool upload_state::wait_to_send(std::unique_lock<std::mutex>& lock, bool chunk) {
  if (input_ended_) throw closed_error(where_ + ": the input was ended already");
  // Every event of the input waits for the announcement; chunks also for credit (ends take none: zerorpc's
  // credit counts the events a receiver must buffer).
  ready_.wait(lock, [&] { return closed_ || (announced_ && (!chunk || credit_.available())); });
  if (closed_) return false;
  if (chunk) (void)credit_.spend();
  return true;
}

void upload_state::throw_ended() {
  std::lock_guard lock(mu_);
  if (why_) std::rethrow_exception(why_);
  throw closed_error(where_ + ": the call ended before its input did: its outcome is in output()");
}

void upload_state::write(std::span<const std::byte> item) {
  bool can = false;
  {
    std::unique_lock lock(mu_);
    can = wait_to_send(lock, true);
  }
  if (!can || !send("CHUNK", item)) throw_ended();
}

bool upload_state::end() {
  {
    std::unique_lock lock(mu_);
    if (input_ended_) return !closed_;
    if (!wait_to_send(lock, false)) return false;
    input_ended_ = true;
  }
  static const std::byte nil[] = {std::byte{0xc0}};
  return send("CHUNK_DONE", nil);
}

bool upload_state::fail(const std::string& name, const std::string& message) {
  {
    std::unique_lock lock(mu_);
    if (input_ended_) throw closed_error(where_ + ": the input was ended already");
    if (!wait_to_send(lock, false)) return false;
    input_ended_ = true;
  }
  duct::pack_buffer args;
  msgpack::pack(args, std::make_tuple(name, message, msgpack::type::nil_t()));
  return send("CHUNK_ERR", std::as_bytes(std::span(args.data(), args.size())));
}

bool upload_state::send(std::string_view name, std::span<const std::byte> args) {
  std::lock_guard lock(cb_mu_);
  if (!send_) throw closed_error(where_ + ": the client was closed");
  return send_(name, args);
}

}  // namespace rpc::detail

namespace rpc {

duplex::duplex(std::shared_ptr<detail::upload_state> in, source out) noexcept
    : in_(std::move(in)), out_(std::move(out)) {}
duplex::duplex(duplex&& other) noexcept : in_(std::move(other.in_)), out_(std::move(other.out_)) {}
duplex& duplex::operator=(duplex&& other) noexcept {
  if (this != &other) {
    cancel();
    in_ = std::move(other.in_);
    out_ = std::move(other.out_);
  }
  return *this;
}
duplex::~duplex() { cancel(); }

void duplex::write_packed(std::span<const std::byte> item) {
  if (!in_) throw error("write() on a moved-from rpc::duplex");
  in_->write(item);
}

std::stop_token duplex::stop_token() const { return in_ ? in_->stop_token() : std::stop_token(); }

void duplex::end() {
  if (!in_) throw error("end() on a moved-from rpc::duplex");
  (void)in_->end();
}

void duplex::fail(const std::string& name, const std::string& message) {
  if (!in_) throw error("fail() on a moved-from rpc::duplex");
  (void)in_->fail(name, message);
}

duct::value duplex::finish() {
  end();
  std::optional<duct::value> result = out_.next();
  if (!result) throw protocol_error(in_->where() + ": the reply ended without a result");
  return std::move(*result);
}

void duplex::cancel() noexcept {
  if (!in_) return;
  out_.cancel();  // stops the call, if it is still open
  in_->close(detail::call_cancelled(in_->where()));
}

}  // namespace rpc
