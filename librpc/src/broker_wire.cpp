// What rpc-broker and its workers say to each other. See broker_wire.hpp and docs/broker.md.
#include "broker_wire.hpp"

#include <array>

#include <openssl/rand.h>

#include <duct/codec.hpp>
#include <duct/msgpack.hpp>
#include <rpc/error.hpp>

namespace rpc::detail {

std::string make_client(std::size_t frontend, std::string_view key, std::string_view routing_id) {
  if (frontend > 255) throw error("rpc-broker: at most 256 frontends");
  if (!key.empty() && key.size() != 40) throw error("rpc-broker: a client's CURVE key is 40 Z85 characters");
  std::string c;
  c.reserve(2 + key.size() + routing_id.size());
  c += static_cast<char>(frontend);
  c += static_cast<char>(key.size());
  c += key;
  c += routing_id;
  return c;
}

bool valid_client(std::string_view client) noexcept {
  if (client.size() < 3) return false;
  const std::size_t key = static_cast<unsigned char>(client[1]);
  return (key == 0 || key == 40) && client.size() > 2 + key;
}

std::size_t client_frontend(std::string_view client) noexcept {
  return client.empty() ? 0 : static_cast<unsigned char>(client[0]);
}

std::string_view client_key(std::string_view client) noexcept {
  if (!valid_client(client)) return {};
  return client.substr(2, static_cast<unsigned char>(client[1]));
}

std::string_view client_routing_id(std::string_view client) noexcept {
  if (!valid_client(client)) return {};
  return client.substr(2 + static_cast<unsigned char>(client[1]));
}

duct::buffer make_ready(std::uint32_t jobs, std::chrono::milliseconds heartbeat, std::string_view prefix,
                        std::string_view name, std::span<const std::byte> methods_packed) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_map(6);
  p.pack(std::string_view("v"));
  p.pack(1);
  p.pack(std::string_view("jobs"));
  p.pack(jobs);
  p.pack(std::string_view("heartbeat"));
  p.pack(static_cast<std::uint64_t>(heartbeat.count()));
  p.pack(std::string_view("tokens"));
  p.pack(prefix);
  p.pack(std::string_view("name"));
  p.pack(name);
  p.pack(std::string_view("methods"));
  out.write(reinterpret_cast<const char*>(methods_packed.data()), methods_packed.size());
  return out.take();
}

ready_info parse_ready(std::span<const std::byte> payload) {
  const duct::value v = duct::decode(duct::codec::msgpack, payload);
  const msgpack::object& o = v.get();
  if (o.type != msgpack::type::MAP) throw error("READY: the payload is not a map");
  ready_info info;
  bool version = false;
  bool methods = false;
  for (const auto& kv : std::span(o.via.map.ptr, o.via.map.size)) {
    if (kv.key.type != msgpack::type::STR) continue;
    const std::string_view k(kv.key.via.str.ptr, kv.key.via.str.size);
    const msgpack::object& x = kv.val;
    if (k == "v") {
      if (x.type != msgpack::type::POSITIVE_INTEGER || x.via.u64 != 1) throw error("READY: version is not 1");
      version = true;
    } else if (k == "jobs") {
      if (x.type != msgpack::type::POSITIVE_INTEGER || x.via.u64 == 0 || x.via.u64 > 65536)
        throw error("READY: jobs is not 1 to 65536");
      info.jobs = static_cast<std::uint32_t>(x.via.u64);
    } else if (k == "heartbeat") {
      if (x.type != msgpack::type::POSITIVE_INTEGER || x.via.u64 == 0 || x.via.u64 > 3600000)
        throw error("READY: heartbeat is not 1 ms to an hour");
      info.heartbeat = std::chrono::milliseconds(x.via.u64);
    } else if (k == "tokens") {
      if (x.type != msgpack::type::STR || x.via.str.size > 64) throw error("READY: tokens is not a short string");
      info.prefix.assign(x.via.str.ptr, x.via.str.size);
      if (!info.prefix.empty() && token_prefix(info.prefix + "0") != info.prefix)
        throw error("READY: tokens is not a worker's token prefix");
    } else if (k == "name") {
      if (x.type != msgpack::type::STR) throw error("READY: name is not a string");
      info.name.assign(x.via.str.ptr, x.via.str.size);
    } else if (k == "methods") {
      if (x.type != msgpack::type::MAP) throw error("READY: methods is not a map");
      for (const auto& m : std::span(x.via.map.ptr, x.via.map.size)) {
        if (m.key.type != msgpack::type::STR || m.key.via.str.size == 0) throw error("READY: a method name is not a string");
        duct::pack_buffer packed;
        msgpack::pack(packed, m.val);
        info.methods.emplace(std::string(m.key.via.str.ptr, m.key.via.str.size), packed.take());
      }
      methods = true;
    }
  }
  if (!version || !methods) throw error("READY: v or methods is missing");
  return info;
}

std::string make_token_prefix() {
  static constexpr char hex[] = "0123456789abcdef";
  std::array<unsigned char, 6> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1)
    throw error("cannot make a token prefix: OpenSSL's random generator failed");
  std::string p = "w";
  for (unsigned char b : bytes) {
    p += hex[b >> 4];
    p += hex[b & 15];
  }
  return p + "-";
}

std::string_view token_prefix(std::string_view token) noexcept {
  if (token.size() < 15 || token[0] != 'w' || token[13] != '-') return {};
  for (char c : token.substr(1, 12))
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  return token.substr(0, 14);
}

}  // namespace rpc::detail
