// Codecs: msgpack (checked as it is read), Python-identical JSON, raw bytes. See codec.hpp.
#include <duct/codec.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include <nlohmann/json.hpp>

#include "msgpack_reader.hpp"

namespace duct {
namespace {

// ---- UTF-8 ---------------------------------------------------------------------------------------------------------

// Decodes one code point at s[i], advancing i. Invalid sequences give U+FFFD and advance by the maximal invalid
// prefix, the way Python's errors="replace" does; `valid` (if given) is cleared for them.
char32_t next_code_point(std::string_view s, std::size_t& i, bool* valid = nullptr) {
  auto byte = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    ++i;
    return b0;
  }
  std::size_t need;
  char32_t cp;
  unsigned char lo = 0x80, hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) {
    need = 1;
    cp = b0 & 0x1f;
  } else if (b0 >= 0xe0 && b0 <= 0xef) {
    need = 2;
    cp = b0 & 0x0f;
    if (b0 == 0xe0) lo = 0xa0;
    if (b0 == 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xf0) lo = 0x90;
    if (b0 == 0xf4) hi = 0x8f;
  } else {
    ++i;
    if (valid) *valid = false;
    return 0xfffd;
  }
  std::size_t k = i + 1;
  for (std::size_t n = 0; n < need; ++n, ++k) {
    if (k >= s.size() || byte(k) < lo || byte(k) > hi) {
      i = k;
      if (valid) *valid = false;
      return 0xfffd;
    }
    cp = (cp << 6) | (byte(k) & 0x3f);
    lo = 0x80;
    hi = 0xbf;
  }
  i = k;
  return cp;
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xc0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xe0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  } else {
    out += static_cast<char>(0xf0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3f));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (cp & 0x3f));
  }
}

// ---- JSON writing, as Python's json.dumps ----------------------------------------------------------------------------

void append_u_escape(std::string& out, unsigned unit) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "\\u%04x", unit & 0xffffu);
  out += buf;
}

void write_json_string(std::string_view s, std::string& out) {
  out += '"';
  for (std::size_t i = 0; i < s.size();) {
    char32_t cp = next_code_point(s, i);
    switch (cp) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (cp < 0x20 || (cp >= 0x7f && cp < 0x10000)) {
          append_u_escape(out, static_cast<unsigned>(cp));
        } else if (cp >= 0x10000) {
          char32_t v = cp - 0x10000;
          append_u_escape(out, static_cast<unsigned>(0xd800 + (v >> 10)));
          append_u_escape(out, static_cast<unsigned>(0xdc00 + (v & 0x3ff)));
        } else {
          out += static_cast<char>(cp);
        }
    }
  }
  out += '"';
}

// repr(float) in Python: shortest round-trip digits, fixed notation for exponents in [-4, 16), else d.ddde+XX.
void write_python_float(double d, std::string& out) {
  if (std::isnan(d)) {
    out += "NaN";
    return;
  }
  if (std::isinf(d)) {
    out += d < 0 ? "-Infinity" : "Infinity";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string_view sci(buf, static_cast<std::size_t>(res.ptr - buf));
  bool negative = sci.front() == '-';
  if (negative) sci.remove_prefix(1);
  std::size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos))
    if (c != '.') digits += c;
  int exponent = std::atoi(std::string(sci.substr(e_pos + 1)).c_str());
  if (negative) out += '-';
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0.";
      out.append(static_cast<std::size_t>(-exponent - 1), '0');
      out += digits;
    } else {
      auto int_len = static_cast<std::size_t>(exponent) + 1;
      if (digits.size() <= int_len) {
        out += digits;
        out.append(int_len - digits.size(), '0');
        out += ".0";
      } else {
        out.append(digits, 0, int_len);
        out += '.';
        out.append(digits, int_len);
      }
    }
  } else {
    out += digits[0];
    if (digits.size() > 1) {
      out += '.';
      out.append(digits, 1);
    }
    char exp_buf[16];
    std::snprintf(exp_buf, sizeof exp_buf, "e%c%02d", exponent < 0 ? '-' : '+', std::abs(exponent));
    out += exp_buf;
  }
}

void write_hex(const char* p, std::size_t n, std::string& out) {
  static constexpr char digits[] = "0123456789abcdef";
  for (std::size_t i = 0; i < n; ++i) {
    auto b = static_cast<unsigned char>(p[i]);
    out += digits[b >> 4];
    out += digits[b & 15];
  }
}

void write_key(const msgpack::object& k, std::string& out) {
  switch (k.type) {
    case msgpack::type::STR: write_json_string({k.via.str.ptr, k.via.str.size}, out); return;
    case msgpack::type::POSITIVE_INTEGER: out += '"' + std::to_string(k.via.u64) + '"'; return;
    case msgpack::type::NEGATIVE_INTEGER: out += '"' + std::to_string(k.via.i64) + '"'; return;
    case msgpack::type::BOOLEAN: out += k.via.boolean ? "\"true\"" : "\"false\""; return;
    case msgpack::type::NIL: out += "\"null\""; return;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64:
      out += '"';
      write_python_float(k.via.f64, out);
      out += '"';
      return;
    default: throw codec_error("JSON cannot carry a map key of msgpack type " + value::type_name(k));
  }
}

void write_json_at(const msgpack::object& o, std::string& out, bool bin_as_object, int depth) {
  if (depth > 512) throw codec_error("value nested too deeply for JSON");
  switch (o.type) {
    case msgpack::type::NIL: out += "null"; break;
    case msgpack::type::BOOLEAN: out += o.via.boolean ? "true" : "false"; break;
    case msgpack::type::POSITIVE_INTEGER: out += std::to_string(o.via.u64); break;
    case msgpack::type::NEGATIVE_INTEGER: out += std::to_string(o.via.i64); break;
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: write_python_float(o.via.f64, out); break;
    case msgpack::type::STR: write_json_string({o.via.str.ptr, o.via.str.size}, out); break;
    case msgpack::type::BIN:
      if (!bin_as_object) throw codec_error("JSON cannot carry bytes (msgpack bin); send a string or use msgpack");
      out += "{\"$bin\": \"";
      write_hex(o.via.bin.ptr, o.via.bin.size, out);
      out += "\"}";
      break;
    case msgpack::type::ARRAY:
      out += '[';
      for (std::uint32_t i = 0; i < o.via.array.size; ++i) {
        if (i) out += ", ";
        write_json_at(o.via.array.ptr[i], out, bin_as_object, depth + 1);
      }
      out += ']';
      break;
    case msgpack::type::MAP:
      out += '{';
      for (std::uint32_t i = 0; i < o.via.map.size; ++i) {
        if (i) out += ", ";
        write_key(o.via.map.ptr[i].key, out);
        out += ": ";
        write_json_at(o.via.map.ptr[i].val, out, bin_as_object, depth + 1);
      }
      out += '}';
      break;
    case msgpack::type::EXT: throw codec_error("JSON cannot carry a msgpack ext value");
  }
}

// ---- JSON reading --------------------------------------------------------------------------------------------------

// Replaces invalid UTF-8 as Python's decode(errors="replace") would and bounds nesting, so the parser below never
// recurses deeper than `max_depth`.
std::string sanitize_json_text(std::string_view in, std::size_t max_depth) {
  std::string out;
  out.reserve(in.size());
  std::size_t depth = 0;
  bool in_string = false, escaped = false;
  for (std::size_t i = 0; i < in.size();) {
    auto c = static_cast<unsigned char>(in[i]);
    if (c >= 0x80) {
      append_utf8(out, next_code_point(in, i));
      continue;
    }
    ++i;
    out += static_cast<char>(c);
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) throw codec_error("JSON payload nested deeper than " + std::to_string(max_depth));
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return out;
}

// The first chunk of a decoded value's zone. msgpack-c's default is 8 KiB whatever the input; a malloc that large
// misses glibc's per-thread cache (requests up to 1032 bytes) and makes it consolidate its fast bins first. For the
// small messages most calls carry (a zerorpc reply is about 100 bytes and decodes into about 250) that was the
// largest single cost in user space on both sides of a call, so they get a chunk that stays in the cache. Larger
// inputs keep 8 KiB chunks; a zone adds a chunk whenever one runs out, so a small input that decodes big still works.
std::size_t zone_chunk_for(std::size_t size) { return size <= 256 ? 960 : 8192; }

value unpack_checked(const char* data, std::size_t size, const decode_limits& limits) {
  auto zone = std::make_unique<msgpack::zone>(zone_chunk_for(size));
  msgpack::object root = detail::read_object(std::as_bytes(std::span(data, size)), limits, zone.get());
  return value(msgpack::object_handle(root, std::move(zone)));
}

}  // namespace

std::string_view to_string(codec c) noexcept {
  switch (c) {
    case codec::msgpack: return "msgpack";
    case codec::json: return "json";
    case codec::raw: return "raw";
  }
  return "?";
}

bool is_valid_utf8(std::string_view text) noexcept {
  bool valid = true;
  for (std::size_t i = 0; i < text.size() && valid;) next_code_point(text, i, &valid);
  return valid;
}

std::string value::type_name(const msgpack::object& o) {
  switch (o.type) {
    case msgpack::type::NIL: return "nil";
    case msgpack::type::BOOLEAN: return "bool";
    case msgpack::type::POSITIVE_INTEGER:
    case msgpack::type::NEGATIVE_INTEGER: return "int";
    case msgpack::type::FLOAT32:
    case msgpack::type::FLOAT64: return "float";
    case msgpack::type::STR: return "str";
    case msgpack::type::BIN: return "bin";
    case msgpack::type::ARRAY: return "array";
    case msgpack::type::MAP: return "map";
    case msgpack::type::EXT: return "ext";
  }
  return "unknown";
}

std::string value::to_json() const {
  std::string out;
  write_json(handle_.get(), out, true);
  return out;
}

void write_json(const msgpack::object& o, std::string& out, bool bin_as_object) {
  write_json_at(o, out, bin_as_object, 0);
}

void check_msgpack(std::span<const std::byte> bytes, const decode_limits& limits) {
  (void)detail::read_object(bytes, limits, nullptr);
}

value decode(codec c, std::span<const std::byte> payload, const decode_limits& limits) {
  const char* data = reinterpret_cast<const char*>(payload.data());
  try {
    switch (c) {
      case codec::msgpack: return unpack_checked(data, payload.size(), limits);
      case codec::json: {
        if (payload.empty()) throw codec_error("empty payload is not JSON");
        std::string text = sanitize_json_text({data, payload.size()}, limits.max_depth);
        nlohmann::json j = nlohmann::json::parse(text);
        std::vector<std::uint8_t> packed = nlohmann::json::to_msgpack(j);
        return unpack_checked(reinterpret_cast<const char*>(packed.data()), packed.size(), limits);
      }
      case codec::raw: {
        if (payload.size() > 0xffffffffu) throw codec_error("raw payload too large for a msgpack bin");
        auto zone = std::make_unique<msgpack::zone>();
        char* copy = static_cast<char*>(zone->allocate_align(payload.size() ? payload.size() : 1));
        if (!payload.empty()) std::memcpy(copy, data, payload.size());
        msgpack::object o;
        o.type = msgpack::type::BIN;
        o.via.bin.size = static_cast<std::uint32_t>(payload.size());
        o.via.bin.ptr = copy;
        return value(msgpack::object_handle(o, std::move(zone)));
      }
    }
  } catch (const codec_error& e) {
    throw codec_error(std::string(to_string(c)) + " codec: " + e.what(), buffer(payload));
  } catch (const nlohmann::json::exception& e) {
    throw codec_error(std::string("json codec: payload is not JSON: ") + e.what(), buffer(payload));
  } catch (const msgpack::unpack_error& e) {
    throw codec_error(std::string("msgpack codec: ") + e.what(), buffer(payload));
  }
  throw codec_error("unknown codec");
}

buffer encode(codec c, std::span<const std::byte> packed) {
  if (c == codec::msgpack) return buffer(packed);
  msgpack::object_handle h =
      msgpack::unpack(reinterpret_cast<const char*>(packed.data()), packed.size());
  const msgpack::object& o = h.get();
  if (c == codec::raw) {
    if (o.type == msgpack::type::STR) return buffer(std::string_view(o.via.str.ptr, o.via.str.size));
    if (o.type == msgpack::type::BIN) return buffer(std::string_view(o.via.bin.ptr, o.via.bin.size));
    throw codec_error("raw codec carries only strings and bytes, not msgpack " + value::type_name(o));
  }
  std::string text;
  write_json(o, text, false);
  return buffer(std::string_view(text));
}

}  // namespace duct
