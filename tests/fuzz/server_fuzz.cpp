// Fuzz target: a running server fed a sequence of arbitrary events by one client, over a duct (rpc::link): calls,
// stream credit, chunks, stops, heartbeats, garbage, in any order and on any channel. The input is the events,
// each a byte of length and then its bytes, or (a length byte of 0xff) a well-formed event of the fuzzer's choice
// built from the next bytes. After them a ping must still be answered within five seconds: the server neither
// crashes, nor hangs, nor lets this client take it down.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iterator>
#include <string>
#include <vector>

#include <duct/connection.hpp>
#include <rpc/event.hpp>
#include <rpc/link.hpp>
#include <rpc/server.hpp>
#include <rpc/stream.hpp>

namespace {

struct served {
  duct::connection peer;
  rpc::link link;
  rpc::server server{{.heartbeat = std::chrono::milliseconds(200), .defer_after = std::chrono::milliseconds(1),
                      .max_jobs = 64, .input_window = 4}};
  rpc::id_generator ids;

  explicit served(std::pair<duct::connection, duct::connection> ends)
      : peer(std::move(ends.first)), link(std::move(ends.second)) {
    server.bind("add", [](int a, int b) { return a + b; });
    server.bind("echo", [](msgpack::object v) { return v; });
    server.bind("count", [](rpc::sink& out, int n) {
      for (int i = 0; i < n % 16; ++i) out.write(i);
    });
    server.bind("sum", [](rpc::source& in) {
      long total = 0;
      while (auto x = in.next_for(std::chrono::milliseconds(200))) total += x->as<long>();
      return total;
    });
    server.bind("report", [](rpc::progress& p, int n) {
      for (int i = 0; i < n % 8; ++i) p.report(i);
      return n;
    });
    server.listen(link);
    server.start();
  }
};

served& instance() {
  static served* s = new served(duct::pair());  // one server for the whole run, as a real one serves many inputs
  return *s;
}

// A well-formed event from fuzz bytes: a name the server knows, a channel that may be open, small arguments.
duct::buffer shaped_event(served& s, std::span<const std::uint8_t>& in, std::vector<rpc::message_id>& channels) {
  static const char* names[] = {"add", "echo", "count", "sum", "report", "_zpc_hb", "_zpc_more", "_ductrpc_stop",
                                "CHUNK", "CHUNK_DONE", "CHUNK_ERR", "_ductrpc_submit", "_ductrpc_poll",
                                "_ductrpc_wait", "_ductrpc_cancel", "_ductrpc_list", "_ductrpc_chunked",
                                "_zerorpc_inspect", "nosuch"};
  auto take = [&]() -> std::uint8_t {
    if (in.empty()) return 0;
    std::uint8_t b = in[0];
    in = in.subspan(1);
    return b;
  };
  const std::uint8_t flags = take();
  rpc::event_header h{s.ids.next()};
  if ((flags & 1) && !channels.empty()) h.response_to = channels[take() % channels.size()];
  h.accepts_deferred = flags & 2;
  h.accepts_batches = flags & 4;
  h.wants_progress = flags & 8;
  h.oneway = flags & 16;
  if (!h.response_to) channels.push_back(h.id);
  const char* name = names[take() % std::size(names)];
  const int a = take(), b = take();
  if (std::string(name) == "_ductrpc_chunked") return rpc::encode_event(h, name, std::make_tuple("sum", std::make_tuple()));
  if (std::string(name) == "_ductrpc_submit") return rpc::encode_event(h, name, std::make_tuple("add", std::make_tuple(a, b)));
  if (std::string(name) == "CHUNK") return rpc::encode_event(h, name, a);
  return rpc::encode_event(h, name, std::make_tuple(a, b));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  served& s = instance();
  std::span<const std::uint8_t> in(data, size);
  std::vector<rpc::message_id> channels;
  try {
    while (!in.empty()) {
      const std::uint8_t n = in[0];
      in = in.subspan(1);
      if (n == 0xff) {
        s.peer.send_bytes(shaped_event(s, in, channels).span());
        continue;
      }
      const std::size_t len = std::min<std::size_t>(n, in.size());
      s.peer.send_bytes(std::span(reinterpret_cast<const std::byte*>(in.data()), len));
      in = in.subspan(len);
    }
    const rpc::message_id ping = s.ids.next();
    s.peer.send_bytes(rpc::encode_event({ping}, "_zerorpc_ping", std::make_tuple()).span());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) std::abort();  // the server no longer answers
      duct::buffer reply = s.peer.recv_bytes(left);
      try {
        rpc::event e = rpc::decode_event(reply.span());
        if (e.header.response_to && *e.header.response_to == ping) break;
      } catch (const rpc::error&) {
        std::abort();  // the server sent something that is not an event
      }
    }
  } catch (const duct::timeout_error&) {
    std::abort();
  } catch (const duct::error&) {
    std::abort();  // the server closed the duct on us
  }
  return 0;
}
