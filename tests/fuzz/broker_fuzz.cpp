// Fuzz target: hostile clients and workers against rpc-broker's routing (librpc/src/broker_core.hpp), with no
// sockets and no clock. The input is a script, a byte per step: a client (one of four, two with CURVE keys) sends
// a request (a method some worker serves, one none does, a built-in, a token's poll with a worker's prefix or a
// stranger's, one-way, or raw bytes) or a later event on one of its channels; a worker (one of three) sends
// READY (well-formed or not), HEARTBEAT, DRAIN, BYE or a garbage command, or answers any client on any channel
// with any event; time passes and the broker ticks. After every step the broker's bounds hold (queue, open
// channels, workers) and every message it sends goes to a worker that announced itself or to a client that spoke;
// at the end, with every worker gone and time past forget_after, it holds no routing state at all.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>
#include <span>
#include <string>
#include <vector>

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/event.hpp>

#include "broker_core.hpp"
#include "broker_wire.hpp"
#include "script.hpp"

namespace {

using rpc::detail::clock;

using fuzz::script;

const char* const prefixes[] = {"w000000000001-", "w000000000002-", "w000000000003-"};

duct::buffer methods_map(std::uint8_t which) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  const bool a = which & 1, b = which & 2;
  p.pack_map(static_cast<std::uint32_t>(a + b));
  if (a) p.pack(std::string("add")), p.pack(std::map<std::string, std::string>{{"doc", ""}});
  if (b) p.pack(std::string("count")), p.pack(std::map<std::string, std::string>{{"doc", ""}});
  return out.take();
}

duct::buffer pack_args(script& s) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  switch (s.next() % 6) {
    case 0: p.pack(std::make_tuple(1, 2)); break;
    case 1: p.pack(std::make_tuple(std::string(prefixes[s.next() % 3]) + "t" + std::to_string(s.next() % 3))); break;
    case 2: p.pack(std::make_tuple(std::string("StillRunning"), std::string("m"), msgpack::type::nil_t())); break;
    case 3: p.pack(std::make_tuple(static_cast<int>(s.next()))); break;
    case 4: p.pack(msgpack::type::nil_t()); break;
    default: p.pack(std::make_tuple(std::string("stranger-token"))); break;
  }
  return out.take();
}

rpc::message_id id_of(std::uint8_t n) { return rpc::message_id("id" + std::to_string(n % 8), true); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  script s{std::span(data, size)};
  rpc::detail::broker_config cfg;
  cfg.heartbeat = std::chrono::milliseconds(100);
  cfg.forget_after = std::chrono::milliseconds(1000);
  cfg.max_queued = 6;
  cfg.client_queued = 3;
  cfg.client_open = 5;
  cfg.max_open = 10;
  cfg.max_workers = 2;
  rpc::detail::broker_core core(cfg);
  const std::string key_a(40, 'a'), key_b(40, 'b');
  const std::string clients[] = {rpc::detail::make_client(0, "", "c0"), rpc::detail::make_client(0, "", "c1"),
                                 rpc::detail::make_client(1, key_a, "c2"), rpc::detail::make_client(1, key_b, "c3")};
  const std::string workers[] = {std::string("\0w0", 3), std::string("\0w1", 3), std::string("\1w2", 3)};
  std::set<std::string> spoke, announced, heard;  // clients that spoke; workers that said READY; that said anything
  auto now = clock::time_point{} + std::chrono::hours(1);
  static const char* const names[] = {"add", "count", "nope", "_zerorpc_list", "_zerorpc_inspect", "_zerorpc_ping",
                                      "_ductrpc_poll", "_ductrpc_wait", "_ductrpc_cancel", "_ductrpc_submit",
                                      "_zpc_hb", "_zpc_more", "_ductrpc_stop", "_ductrpc_chunk", "OK", "ERR",
                                      "STREAM", "STREAM_DONE", "DEFERRED"};
  constexpr std::size_t name_count = sizeof names / sizeof names[0];

  for (int steps = 0; steps < 256 && !s.in.empty(); ++steps) {
    const std::uint8_t op = s.next();
    switch (op % 6) {
      case 0:
      case 1: {  // a client's event
        const std::string& c = clients[s.next() % 4];
        spoke.insert(c);
        rpc::event_header h;
        h.id = id_of(s.next());
        const std::uint8_t flags = s.next();
        if (flags & 1) h.response_to = id_of(s.next());
        h.oneway = flags & 2;
        h.accepts_deferred = flags & 4;
        h.accepts_stop = flags & 8;
        duct::buffer body;
        if (flags & 16) {
          auto raw = s.bytes(s.next() % 32);
          body = duct::buffer(std::as_bytes(raw));
        } else {
          duct::buffer args = pack_args(s);
          body = rpc::encode_event_packed(h, names[s.next() % name_count], args.span());
        }
        core.from_client(c, std::move(body), now);
        break;
      }
      case 2: {  // a worker's event for a client
        const std::string& w = workers[s.next() % 3];
        heard.insert(w);
        const std::string& c = clients[s.next() % 4];
        rpc::event_header h;
        h.id = id_of(s.next());
        h.response_to = id_of(s.next());
        duct::buffer args = pack_args(s);
        core.from_worker(w, c, rpc::encode_event_packed(h, names[s.next() % name_count], args.span()), now);
        break;
      }
      case 3: {  // a worker's command
        const std::uint8_t w = s.next() % 3;
        const std::uint8_t which = s.next();
        heard.insert(workers[w]);
        switch (which % 6) {
          case 0: {
            duct::buffer methods = methods_map(s.next());
            duct::buffer ready = rpc::detail::make_ready(1 + s.next() % 3, std::chrono::milliseconds(50 + s.next()),
                                                         prefixes[w], "w", methods.span());
            core.command(workers[w], rpc::detail::cmd_ready, ready.span(), now);
            announced.insert(workers[w]);
            break;
          }
          case 1: {
            auto raw = s.bytes(s.next() % 32);
            core.command(workers[w], rpc::detail::cmd_ready, std::as_bytes(raw), now);
            break;
          }
          case 2: core.command(workers[w], rpc::detail::cmd_heartbeat, {}, now); break;
          case 3: core.command(workers[w], rpc::detail::cmd_drain, {}, now); break;
          case 4: core.command(workers[w], rpc::detail::cmd_bye, {}, now); break;
          default: core.command(workers[w], "WHAT", {}, now); break;
        }
        break;
      }
      default:  // time passes
        now += std::chrono::milliseconds(s.next() * 4);
        core.tick(now);
        break;
    }
    if (core.queued() > cfg.max_queued || core.open_channels() > cfg.max_open || core.workers() > cfg.max_workers)
      std::abort();
    for (const auto& m : core.out()) {
      // A call's event only to a worker that said READY; a command (RESET) to one that spoke.
      if (m.to_worker && !(m.client.empty() ? heard : announced).count(m.peer)) std::abort();
      if (!m.to_worker && !spoke.count(m.peer)) std::abort();     // only to a client that spoke
    }
    core.out().clear();
  }
  // Every worker leaves; long after, nothing of any call is left.
  for (const auto& w : workers) core.command(w, rpc::detail::cmd_bye, {}, now);
  now += std::chrono::seconds(10);
  core.tick(now);
  now += std::chrono::seconds(10);
  core.tick(now);
  if (core.workers() != 0 || core.queued() != 0 || core.open_channels() != 0) {
    std::fprintf(stderr, "left behind: %zu workers, %zu queued, %zu channels\n", core.workers(), core.queued(),
                 core.open_channels());
    std::abort();
  }
  return 0;
}
