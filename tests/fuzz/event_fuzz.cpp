// Fuzz target: the zerorpc event decoder, which sees every message a server or client receives. A body is refused
// with protocol_error or decoded; a decoded event encodes again and decodes to the same name, ids and version. The
// quick decoder (the usual shapes, read in place) accepts nothing the reference refuses and agrees with it on the rest.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include <rpc/event.hpp>

#include "access.hpp"
#include "event_compare.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  rpc::event quick;
  if (rpc::detail::decode_event_quickly(bytes, quick)) {
    rpc::event reference;
    try {
      rpc::detail::decode_event_checked(bytes, reference);
    } catch (const rpc::error&) {
      std::abort();  // the quick decoder took what the reference refuses
    }
    if (!test::same_event(quick, reference)) std::abort();
  }
  rpc::event e;
  try {
    e = rpc::decode_event(bytes);
  } catch (const rpc::error&) {
    return 0;
  }
  duct::buffer again = rpc::encode_event(e.header, e.name, e.args());
  rpc::event back = rpc::decode_event(again.span());  // must not throw: we wrote it
  if (back.name != e.name || !(back.header.id == e.header.id) || back.header.version != e.header.version ||
      back.header.response_to.has_value() != e.header.response_to.has_value())
    std::abort();
  return 0;
}
