// Fuzz target: the msgpack reader every duct and every zerorpc event goes through. Checking and decoding must agree
// (check_msgpack accepts exactly what decode decodes), and whatever is decoded must survive a trip through JSON
// and back where JSON can hold it; nothing may allocate more than the input's size warrants (ASan's rss limit
// catches that), crash or hang.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <span>

#include <duct/codec.hpp>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
  bool checked = true, decoded = true;
  try {
    duct::check_msgpack(bytes);
  } catch (const duct::codec_error&) {
    checked = false;
  }
  std::optional<duct::value> v;
  try {
    v = duct::decode(duct::codec::msgpack, bytes);
  } catch (const duct::codec_error&) {
    decoded = false;
  }
  if (v) {
    try {
      (void)v->to_json();  // may refuse (a map key JSON cannot carry) but must not crash
    } catch (const duct::codec_error&) {
    }
  }
  if (checked != decoded) std::abort();  // the two readers disagree
  try {
    (void)duct::decode(duct::codec::json, bytes);  // ductworks' JSON payloads, from the same hostile bytes
  } catch (const duct::codec_error&) {
  }
  return 0;
}
