// Fuzz target: rpc-call's arguments. Each is JSON where it parses as JSON, else a string; stdin is a sequence of
// JSON values for the "-" arguments. Whatever the text: a value packed (and printed back), or a json_error; the
// value splitter always moves forward and never reads past the text.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include <duct/codec.hpp>

#include "json_form.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (tools::is_json(text)) {
    duct::pack_buffer buf;
    msgpack::packer<duct::pack_buffer> p(buf);
    try {
      tools::pack_json(p, text);  // JSON, but {"$bin": ...} may still hold something that is not hex
      duct::buffer packed = buf.take();
      duct::value v = duct::decode(duct::codec::msgpack, packed.span());  // what we packed reads back
      (void)tools::to_json(v.get(), {.pretty = true});
    } catch (const tools::json_error&) {
    }
  }
  std::string_view rest = text;
  try {
    for (int n = 0; auto value = tools::next_json_text(rest); ++n) {
      if (value->data() < text.data() || value->data() + value->size() > text.data() + text.size()) std::abort();
      if (n > static_cast<int>(size)) std::abort();  // no progress
      duct::pack_buffer buf;
      msgpack::packer<duct::pack_buffer> p(buf);
      try {
        tools::pack_json(p, *value);
      } catch (const tools::json_error&) {
      }
    }
  } catch (const tools::json_error&) {
  }
  return 0;
}
