// rpc-call's arguments as the call's msgpack array. See call_args.hpp.
#include "call_args.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <iterator>
#include <optional>

#include <duct/codec.hpp>

#include "json_form.hpp"

namespace tools {
namespace {

// One argument's text as a value: JSON where it parses as JSON (unless --string), else a string, or bytes where it is
// not UTF-8 (a file's contents may be anything).
void pack_text(msgpack::packer<duct::pack_buffer>& p, const std::string& text, bool strings) {
  if (!strings && is_json(text)) {
    pack_json(p, text);
  } else if (duct::is_valid_utf8(text)) {
    p.pack(text);
  } else {
    p.pack_bin(static_cast<std::uint32_t>(text.size()));
    p.pack_bin_body(text.data(), static_cast<std::uint32_t>(text.size()));
  }
}

// @FILE's contents, refused past the size of a message before any of it is read.
// Throws: json_error (a usage error) naming the file.
std::string read_argument_file(const std::string& path) {
  constexpr std::size_t limit = std::size_t{64} << 20;  // the server's default message size
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw json_error("@" + path + ": " + std::strerror(errno));
  std::string text;
  struct stat st {};
  if (::fstat(::fileno(f), &st) == 0 && S_ISREG(st.st_mode) && static_cast<std::uint64_t>(st.st_size) > limit) {
    std::fclose(f);
    throw json_error("@" + path + ": larger than " + std::to_string(limit >> 20) + " MiB");
  }
  char buf[65536];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) {
    if (text.size() + n > limit) {
      std::fclose(f);
      throw json_error("@" + path + ": larger than " + std::to_string(limit >> 20) + " MiB");
    }
    text.append(buf, n);
  }
  const bool failed = std::ferror(f) != 0;
  std::fclose(f);
  if (failed) throw json_error("@" + path + ": cannot read it");
  return text;
}

}  // namespace

duct::buffer pack_arguments(const std::vector<std::string>& args, bool strings) {
  duct::pack_buffer buf;
  msgpack::packer<duct::pack_buffer> p(buf);
  p.pack_array(static_cast<std::uint32_t>(args.size()));
  std::optional<std::string> input;  // stdin, read once at the first "-"
  std::string_view unread;
  int dashes = 0;
  for (const std::string& a : args) {
    if (a == "-" && !strings) {
      if (!input) {
        input.emplace(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
        unread = *input;
      }
      ++dashes;
      std::optional<std::string_view> value = next_json_text(unread);
      if (!value)
        throw json_error("- number " + std::to_string(dashes) + ": stdin has no JSON value left for it");
      pack_json(p, *value);  // throws json_error: a usage error
    } else if (a.starts_with("@@")) {
      pack_text(p, a.substr(1), strings);
    } else if (a.starts_with("@")) {
      if (a.size() == 1) throw json_error("@ needs a file name (@@ for a literal @)");
      pack_text(p, read_argument_file(a.substr(1)), strings);
    } else {
      pack_text(p, a, strings);
    }
  }
  if (input && next_json_text(unread))
    throw json_error("stdin holds more JSON values than the " + std::to_string(dashes) + " - argument" +
                            (dashes == 1 ? "" : "s") + " take");
  return buf.take();
}

}  // namespace tools
