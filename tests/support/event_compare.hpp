// Whether two decoded events are the same (header, name, args, size): what the event tests and the event fuzz
// target compare the quick decoder's output with the reference's by. Header-only: the fuzz target links no test
// support.
#pragma once

#include <string>

#include <msgpack.hpp>
#include <rpc/event.hpp>

namespace test {

/// The args as msgpack bytes: compared as bytes, a NaN equals itself (msgpack::object's == compares floats as floats).
inline std::string packed(const msgpack::object& o) {
  msgpack::sbuffer out;
  msgpack::pack(out, o);
  return std::string(out.data(), out.size());
}

inline bool same_event(const rpc::event& a, const rpc::event& b) {
  const auto& x = a.header;
  const auto& y = b.header;
  return x.id == y.id && x.response_to == y.response_to && x.version == y.version &&
         x.accepts_deferred == y.accepts_deferred && x.accepts_stop == y.accepts_stop &&
         x.wants_progress == y.wants_progress && x.oneway == y.oneway && x.accepts_batches == y.accepts_batches &&
         a.name == b.name && packed(a.args()) == packed(b.args()) && a.wire_size == b.wire_size;
}

}  // namespace test
