// Internal: reads msgpack bytes into msgpack-c's object tree, checking them as it goes.
#pragma once

#include <cstddef>
#include <span>

#include <duct/codec.hpp>
#include <msgpack.hpp>

namespace duct::detail {

/// Reads `bytes`, which must be exactly one well-formed msgpack value within `limits`, in one pass.
///
/// With a zone, returns the object the value decodes to, built in `zone`. It is what msgpack::unpack() makes without a
/// reference function: the same types (a signed integer that is not negative is a POSITIVE_INTEGER, a float32 a
/// FLOAT32 held as double), and str, bin and ext bodies copied into the zone, so the object does not refer to `bytes`.
/// It allocates nothing but zone memory, where msgpack::unpack() allocates its parser's stacks for every value.
/// Without a zone it only checks, allocates nothing, and returns nil.
///
/// Nothing is allocated for a part before it is known to fit: a container claiming more elements than bytes remain,
/// or a body longer than what remains, is refused before its memory is taken; nesting deeper than `limits` is
/// refused before it is entered. So a hostile payload costs at most memory in proportion to its own size.
/// Throws: codec_error describing the first problem and its offset (without the payload; the caller attaches it).
msgpack::object read_object(std::span<const std::byte> bytes, const decode_limits& limits, msgpack::zone* zone);

}  // namespace duct::detail
