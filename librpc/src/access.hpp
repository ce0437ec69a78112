// Internal: what the library may do with its public classes that their users may not: make a future, a source or a
// duplex around the library's own state, reach a link's or a server's core, and decode into an event in place. The
// public headers name detail::access as a friend and nothing more.
#pragma once

#include <memory>
#include <span>

#include <duct/codec.hpp>
#include <rpc/event.hpp>
#include <rpc/future.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <rpc/stream.hpp>

namespace rpc::detail {

class link_core;

struct access {
  // Qualified: rpc::detail has a function named duplex (bind.hpp).
  static rpc::future make_future(std::shared_ptr<call_state> state) noexcept { return rpc::future(std::move(state)); }
  static rpc::source make_source(std::shared_ptr<stream_state> state) noexcept { return rpc::source(std::move(state)); }
  static rpc::duplex make_duplex(std::shared_ptr<upload_state> in, rpc::source out) noexcept {
    return rpc::duplex(std::move(in), std::move(out));
  }
  static const std::shared_ptr<link_core>& core(const rpc::link& l) noexcept { return l.core_; }
  static rpc::server::impl& core(rpc::server& s) noexcept { return *s.impl_; }
  /// Sets a decoded event's body and its args, which point into the body's zone.
  static void set_body(rpc::event& e, duct::value body, const msgpack::object* args) noexcept {
    e.args_ = args;
    e.body_ = std::move(body);
  }
};

/// decode_event(), into `fresh`, a default-constructed event, where the caller wants it (in a shared_ptr's block, in
/// an optional) rather than moved there: an event is large. Throws: as decode_event(); `fresh` is then unspecified.
void decode_event_into(std::span<const std::byte> body, rpc::event& fresh, const duct::decode_limits& limits = {});

}  // namespace rpc::detail
