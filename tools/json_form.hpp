// The tools' JSON form of msgpack values, both ways. JSON maps to msgpack as usual (integers stay integers, other
// numbers are float64); bytes (msgpack bin), which JSON has no form for, are written as {"$bin": "HEX"} and read back
// from the same form, so a value survives a trip through a shell pipeline.
#pragma once

#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

#include <duct/buffer.hpp>
#include <duct/msgpack.hpp>

namespace tools {

/// A text that is not the JSON it should be.
class json_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Packs the JSON text `text` as one msgpack value ({"$bin": "HEX"} becomes bin).
/// Throws: json_error naming what is wrong with it.
void pack_json(msgpack::packer<duct::pack_buffer>& p, std::string_view text);

/// Whether `text` parses as one JSON value.
bool is_json(std::string_view text);

/// Takes the text of the next JSON value off the front of `rest`, a sequence of JSON values separated by white space
/// (as `jq -c` writes them): "[1, 2] {"a": 3} 4" gives "[1, 2]", then "{"a": 3}", then "4". Only the value's extent
/// is found here; pack_json() checks it.
/// Returns: the value's text, or nothing when only white space is left. Throws: json_error for a value left open.
std::optional<std::string_view> next_json_text(std::string_view& rest);

/// How a value is printed.
struct print_style {
  bool pretty = false;  ///< indented over several lines
  bool raw = false;     ///< a string as its bare characters (bytes as themselves), not as a JSON string
};

/// `o` as one JSON text in `style` (no newline at the end).
std::string to_json(const msgpack::object& o, print_style style = {});

}  // namespace tools
