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
  /// Sets a decoded event's args.
  static void set_args(rpc::event& e, duct::value args) noexcept { e.args_ = std::move(args); }
};

/// decode_event(), into `fresh`, a default-constructed event, where the caller wants it (in a shared_ptr's block, in
/// an optional) rather than moved there: an event is large. Throws: as decode_event(); `fresh` is then unspecified.
void decode_event_into(std::span<const std::byte> body, rpc::event& fresh, const duct::decode_limits& limits = {});

// decode_event_into() is these two (event.cpp), each tested against the other:
/// The quick decoder, for events of the usual shape: [header, name, args] with a header of scalars (ids, the
/// version, flags). Returns: false, with `fresh` left unspecified, for a body of any other shape or not well-formed;
/// it accepts nothing the reference refuses and decodes what it accepts as the reference does.
bool decode_event_quickly(std::span<const std::byte> body, rpc::event& fresh, const duct::decode_limits& limits = {});
/// The reference decoder: any body, read whole into msgpack objects and then taken apart. Throws: as decode_event().
void decode_event_checked(std::span<const std::byte> body, rpc::event& fresh, const duct::decode_limits& limits = {});

}  // namespace rpc::detail
