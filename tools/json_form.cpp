// The tools' JSON form of msgpack values. See json_form.hpp.
#include "json_form.hpp"

#include <nlohmann/json.hpp>

#include <duct/codec.hpp>

namespace tools {
namespace {

constexpr int max_depth = 256;

nlohmann::json parse(std::string_view text) {
  // Bounded nesting: the parser recurses, and its input may come from anywhere (stdin).
  auto guard = [](int depth, nlohmann::json::parse_event_t, nlohmann::json&) {
    if (depth > max_depth) throw json_error("JSON nested deeper than " + std::to_string(max_depth) + " levels");
    return true;
  };
  try {
    return nlohmann::json::parse(text.begin(), text.end(), guard);
  } catch (const nlohmann::json::exception& e) {
    throw json_error(std::string("not JSON: ") + e.what());
  }
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// {"$bin": "HEX"}: the bytes, or nothing if `j` is not of that form.
std::optional<std::string> as_bin(const nlohmann::json& j) {
  if (!j.is_object() || j.size() != 1 || !j.contains("$bin") || !j["$bin"].is_string()) return std::nullopt;
  const std::string& hex = j["$bin"].get_ref<const std::string&>();
  if (hex.size() % 2 != 0) throw json_error("{\"$bin\": ...} needs an even number of hex digits");
  std::string bytes;
  bytes.reserve(hex.size() / 2);
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0 || lo < 0) throw json_error("{\"$bin\": ...} holds something that is not hex: " + hex.substr(i, 2));
    bytes.push_back(static_cast<char>(hi * 16 + lo));
  }
  return bytes;
}

void pack(msgpack::packer<duct::pack_buffer>& p, const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: p.pack_nil(); return;
    case nlohmann::json::value_t::boolean: j.get<bool>() ? p.pack_true() : p.pack_false(); return;
    case nlohmann::json::value_t::number_integer: p.pack(j.get<std::int64_t>()); return;
    case nlohmann::json::value_t::number_unsigned: p.pack(j.get<std::uint64_t>()); return;
    case nlohmann::json::value_t::number_float: p.pack_double(j.get<double>()); return;
    case nlohmann::json::value_t::string: p.pack(j.get_ref<const std::string&>()); return;
    case nlohmann::json::value_t::array:
      p.pack_array(static_cast<std::uint32_t>(j.size()));
      for (const auto& e : j) pack(p, e);
      return;
    case nlohmann::json::value_t::object:
      if (auto bytes = as_bin(j)) {
        p.pack_bin(static_cast<std::uint32_t>(bytes->size()));
        p.pack_bin_body(bytes->data(), static_cast<std::uint32_t>(bytes->size()));
        return;
      }
      p.pack_map(static_cast<std::uint32_t>(j.size()));
      for (const auto& [k, v] : j.items()) {
        p.pack(k);
        pack(p, v);
      }
      return;
    default: throw json_error("JSON value of a kind msgpack cannot carry");
  }
}

}  // namespace

void pack_json(msgpack::packer<duct::pack_buffer>& p, std::string_view text) { pack(p, parse(text)); }

bool is_json(std::string_view text) {
  if (text.empty()) return false;
  try {
    (void)parse(text);
    return true;
  } catch (const json_error&) {
    return false;
  }
}

std::optional<std::string_view> next_json_text(std::string_view& rest) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  std::size_t i = 0;
  while (i < rest.size() && blank(rest[i])) ++i;
  if (i == rest.size()) {
    rest = {};
    return std::nullopt;
  }
  const std::size_t start = i;
  std::size_t depth = 0;
  bool in_string = false;
  for (; i < rest.size(); ++i) {
    const char c = rest[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character, whatever it is
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) {
          ++i;
          break;
        }
      }
      continue;
    }
    const bool opens = c == '"' || c == '[' || c == '{';
    if (depth == 0 && i > start && (blank(c) || opens)) break;  // the end of a bare number, true, false or null
    if (c == '"') in_string = true;
    else if (c == '[' || c == '{') ++depth;
    else if ((c == ']' || c == '}') && depth > 0 && --depth == 0) {
      ++i;
      break;
    }
  }
  if (in_string || depth > 0) throw json_error("not JSON: a value on stdin is not closed: " + std::string(rest.substr(start, 40)));
  std::string_view value = rest.substr(start, i - start);
  rest.remove_prefix(i);
  return value;
}

std::string to_json(const msgpack::object& o, print_style style) {
  if (style.raw && o.type == msgpack::type::STR) return {o.via.str.ptr, o.via.str.size};
  if (style.raw && o.type == msgpack::type::BIN) return {o.via.bin.ptr, o.via.bin.size};
  std::string out;
  try {
    duct::write_json(o, out, true);
  } catch (const duct::codec_error& e) {  // ext, or a map key JSON has no form for: say so instead of failing
    return nlohmann::json{{"$unprintable", e.what()}}.dump();
  }
  if (!style.pretty) return out;
  return nlohmann::json::parse(out).dump(2);
}

}  // namespace tools
