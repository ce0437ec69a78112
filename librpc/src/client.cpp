// rpc::client: forwards to its transport, ZeroMQ (zmq_client.cpp) or a duct link (link.cpp). See client.hpp.
#include <rpc/client.hpp>

#include "access.hpp"
#include "client_impl.hpp"
#include "reply.hpp"
#include "stream_state.hpp"
#include "upload_state.hpp"

namespace rpc {

client::client(std::string_view endpoints, client_options opts)
    : impl_(make_spread_client(split_endpoints(endpoints), std::move(opts))) {}
client::client(const std::vector<std::string>& endpoints, client_options opts)
    : impl_(make_spread_client(endpoints, std::move(opts))) {}
client::client(link over, client_options opts) : impl_(make_link_client(over, opts)) {}
client::~client() = default;

const std::string& client::endpoint() const noexcept { return impl_->endpoint; }

future client::start_async(std::string_view method, duct::buffer packed_args,
                           std::optional<std::chrono::milliseconds> limit) {
  return impl_->start(method, packed_args, limit);
}

void client::publish_here(std::string_view method, const duct::buffer& packed_args) {
  impl_->publish(method, packed_args);
}

source client::start_stream(std::string_view method, const duct::buffer& packed_args) {
  return detail::access::make_source(impl_->stream(method, packed_args, false));
}

duplex client::start_chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) {
  detail::chunked_halves halves = impl_->chunked(method, packed_args, oneway);
  return detail::access::make_duplex(std::move(halves.in), detail::access::make_source(std::move(halves.out)));
}

duct::value client::call_reporting(std::string_view method, const duct::buffer& packed_args,
                                   const std::function<void(const duct::value&)>& on_progress,
                                   std::stop_token stop) {
  std::shared_ptr<detail::stream_state> state = impl_->stream(method, packed_args, true);
  source guard = detail::access::make_source(state);  // an exception from on_progress (or a time-out) stops the call
  std::stop_callback stopped(stop, [&guard] { guard.cancel(); });  // so does the caller's stop
  std::optional<detail::clock::time_point> deadline;
  if (auto limit = impl_->limit_of(std::nullopt)) deadline = detail::clock::now() + *limit;
  while (auto report = state->next(deadline)) on_progress(*report);
  return state->take_result();
}

std::string client::submit_packed(std::string_view method, const duct::buffer& packed_args) {
  return impl_->call("_ductrpc_submit", detail::method_and_args(method, packed_args.span()), std::nullopt)
      .as<std::string>();
}

duct::value client::call_here(std::string_view method, const duct::buffer& packed_args,
                              std::optional<std::chrono::milliseconds> limit) {
  return impl_->call(method, packed_args, limit);
}

}  // namespace rpc
