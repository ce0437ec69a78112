// Internal: what a client's transport does. The ZeroMQ client (zmq_client.cpp) and the duct link (link.cpp) each
// implement it; rpc::client only forwards.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <rpc/client.hpp>

namespace rpc {
namespace detail {
class stream_state;
struct chunked_halves;
}  // namespace detail

struct client::impl {
  impl(std::string where, client_options o) : endpoint(std::move(where)), opts(o) {}
  virtual ~impl() = default;
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  /// A blocking call: its result, or the call's error. `limit` replaces opts.timeout; a negative one means none.
  virtual duct::value call(std::string_view method, const duct::buffer& packed_args,
                           std::optional<std::chrono::milliseconds> limit) = 0;
  /// Starts a call; the future throws what call() would.
  virtual future start(std::string_view method, const duct::buffer& packed_args,
                       std::optional<std::chrono::milliseconds> limit) = 0;

  /// Starts a streamed call: its items arrive into the returned state, which the transport has attach()ed. With
  /// `progress`, the call asks for progress reports instead: they arrive as the items, and the result is the
  /// state's result.
  virtual std::shared_ptr<detail::stream_state> stream(std::string_view method, const duct::buffer& packed_args,
                                                       bool progress) = 0;

  /// Starts a chunked call (_ductrpc_chunked): both halves attach()ed. `oneway`: the call is forgotten once the
  /// input's end is sent. Throws: closed_error if closing.
  virtual detail::chunked_halves chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) = 0;

  /// Sends a one-way request. Throws: closed_error if closing, error if it cannot be sent.
  virtual void publish(std::string_view method, const duct::buffer& packed_args) = 0;

  /// The call's time limit: `limit` if given (none if negative), else the client's default.
  [[nodiscard]] std::optional<std::chrono::milliseconds> limit_of(std::optional<std::chrono::milliseconds> limit) const {
    if (!limit) return opts.timeout;
    if (limit->count() < 0) return std::nullopt;
    return limit;
  }

  const std::string endpoint;
  const client_options opts;
};

/// The ZeroMQ transport. Throws: error for an endpoint ZeroMQ cannot parse.
std::unique_ptr<client::impl> make_zmq_client(std::string_view endpoint, client_options opts);
/// The endpoints of a comma-separated list (see client(std::string_view)); one endpoint is a list of one.
std::vector<std::string> split_endpoints(std::string_view list);
/// Several servers over ZeroMQ, each call whole to one of them (client_spread.cpp); one endpoint is
/// make_zmq_client's. Throws: error for no endpoint, too many, or one ZeroMQ cannot parse.
std::unique_ptr<client::impl> make_spread_client(const std::vector<std::string>& endpoints, client_options opts);
/// The duct transport (link.cpp). Throws: closed_error if the link is closed.
std::unique_ptr<client::impl> make_link_client(const link& l, client_options opts);

}  // namespace rpc
