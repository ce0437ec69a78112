// Internal: builds msgpack-c's object tree from msgpack bytes that check_msgpack() has accepted.
#pragma once

#include <cstddef>
#include <span>

#include <msgpack.hpp>

namespace duct::detail {

/// The object that `checked` (a single, complete, well-formed msgpack value, as check_msgpack() guarantees) decodes
/// to, built in `zone`. It is what msgpack::unpack() makes without a reference function: the same types (a signed
/// integer that is not negative is a POSITIVE_INTEGER, a float32 a FLOAT32 held as double), and str, bin and ext
/// bodies copied into the zone, so the object does not refer to `checked`. It allocates nothing but zone memory,
/// where msgpack::unpack() allocates its parser's stacks for every value. Undefined for unchecked input.
msgpack::object build_object(std::span<const std::byte> checked, msgpack::zone& zone);

}  // namespace duct::detail
