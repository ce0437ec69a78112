// Fuzz target: a hostile server against our client's call table (librpc/src/call_table.hpp), with no sockets and
// no clock. The input is a script, a byte per step: open a call (plain, limited, a stream, progress, chunked), feed
// an event the server chose (any name a server may send, on any channel, with arguments from the input, or raw
// bytes to decode), let time pass and tick, or act as a consumer (take items, grant credit, drop a stream, send a
// chunk). Each call must end exactly once, the table must hold no more than was opened, and closing must empty it:
// whatever the server sends, the client neither crashes, nor leaks, nor loses track of a call.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <duct/msgpack.hpp>
#include <rpc/error.hpp>
#include <rpc/event.hpp>

#include "call_table.hpp"
#include "script.hpp"

namespace {

using rpc::detail::clock;

using fuzz::script;

// Arguments a server might send: well-formed ones of the kinds replies carry, and odd ones.
duct::buffer args_from(script& s) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  switch (s.next() % 8) {
    case 0: p.pack(std::make_tuple(static_cast<int>(s.next()))); break;                   // [n]: OK, STREAM, more
    case 1: p.pack(std::make_tuple(std::string("tok-") + std::to_string(s.next() % 4)));  // [token]: DEFERRED
      break;
    case 2:  // [name, message, traceback]: ERR, with the names our client gives meaning to
      p.pack(std::make_tuple(std::string(s.next() % 2 ? "StillRunning" : "ValueError"), std::string("m"),
                             msgpack::type::nil_t()));
      break;
    case 3: p.pack(std::make_tuple()); break;
    case 4: p.pack(msgpack::type::nil_t()); break;
    case 5: p.pack(std::make_tuple(-static_cast<long>(s.next()) * 1'000'000'000L)); break;  // negative credit
    case 6: {  // a batch of items
      const int n = s.next() % 5;
      p.pack_array(n);
      for (int i = 0; i < n; ++i) p.pack(i);
      break;
    }
    default: p.pack(std::string(s.next() % 40, 'x')); break;  // not even an array
  }
  return out.take();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const char* names[] = {"OK",         "ERR",      "DEFERRED", "STREAM",  "STREAM_DONE", "STREAM_BATCH",
                                "PROGRESS",   "_zpc_hb",  "_zpc_more", "CHUNK",  "_ductrpc_stop", "nosuch"};
  script s{{data, size}};
  rpc::detail::call_table calls;
  std::vector<rpc::message_id> channels;  // every channel opened (and the server's guesses at others)
  std::vector<std::shared_ptr<rpc::detail::call_state>> futures;
  std::vector<rpc::detail::chunked_halves> streams;
  std::size_t opened = 0, ended = 0;
  auto now = clock::time_point() + std::chrono::hours(1);
  rpc::detail::effects fx;
  auto count = [&] {
    ended += fx.settles.size();
    for (auto& d : fx.settles) {
      if (!d.state || d.state->settled()) std::abort();  // a call ended twice
      d.state->settle(std::move(d.value), std::move(d.error));
    }
    fx = {};
  };

  for (int steps = 0; !s.in.empty() && steps < 400; ++steps) {
    const std::uint8_t op = s.next();
    switch (op % 6) {
      case 0: {  // open a call
        rpc::detail::call_spec spec;
        spec.endpoint = "fuzz";
        spec.method = "m";
        spec.heartbeat = std::chrono::milliseconds(100 + s.next());
        if (op & 0x10) {
          spec.limit = std::chrono::milliseconds(s.next() * 10);
          spec.deadline = now + spec.limit;
        }
        duct::buffer args = args_from(s);
        const std::uint8_t kind = s.next() % 4;
        if (kind == 0) {
          auto f = std::make_shared<rpc::detail::call_state>();
          channels.push_back(calls.open("m", args.span(), spec, f, now).id);
          futures.push_back(f);
        } else {
          rpc::detail::stream_spec k;
          k.progress = kind == 2;
          k.chunked = kind == 3;
          k.oneway = k.chunked && (op & 0x20);
          k.window = 1 + s.next() % 8;
          auto r = calls.open_stream("m", args.span(), spec, k, now);
          channels.push_back(r.id);
          streams.push_back(r.halves);
        }
        ++opened;
        break;
      }
      case 1: {  // an event from the server, shaped, on a channel of ours or one it made up
        if (channels.empty()) break;
        rpc::id_generator ids;
        rpc::event_header h{ids.next(), channels[s.next() % channels.size()]};
        if (op & 0x10) h.response_to = ids.next();  // a channel we never opened
        h.accepts_stop = op & 0x20;
        duct::buffer args = args_from(s);
        duct::buffer body = rpc::encode_event_packed(h, names[s.next() % std::size(names)], args.span());
        rpc::event ev = rpc::decode_event(body.span());
        calls.on_event(ev, now, fx);
        break;
      }
      case 2: {  // raw bytes: whatever decodes is fed
        auto raw = s.bytes(s.next());
        try {
          rpc::event ev = rpc::decode_event(std::as_bytes(raw));
          calls.on_event(ev, now, fx);
        } catch (const rpc::error&) {
          // not an event: a transport drops it
        }
        break;
      }
      case 3:  // time passes
        now += std::chrono::milliseconds(s.next() * 8);
        calls.tick(now, fx);
        break;
      case 4: {  // a consumer takes an item, grants credit, or drops its stream
        if (streams.empty()) break;
        auto& st = streams[s.next() % streams.size()];
        const rpc::message_id& id = channels[s.next() % channels.size()];
        switch (s.next() % 3) {
          case 0:
            try {
              (void)st.out->next(clock::now());  // never waits: the deadline has passed
            } catch (const rpc::error&) {
              // the stream's error, or the time limit
            }
            break;
          case 1: (void)calls.credit(id, s.next()); break;
          default: calls.stop(id, fx); break;
        }
        break;
      }
      default: {  // a writer sends an event of its input, straight through the table
        if (channels.empty()) break;
        static const char* input[] = {"CHUNK", "CHUNK_DONE", "CHUNK_ERR"};
        duct::buffer args = args_from(s);
        (void)calls.chunk(channels[s.next() % channels.size()], input[s.next() % 3], args.span());
        break;
      }
    }
    for (const duct::buffer& b : fx.sends) (void)rpc::decode_event(b.span());  // what we send is well-formed
    count();
    if (calls.size() > opened) std::abort();  // the table holds only calls we opened (and their follow-ups)
  }
  calls.fail_all([](const std::string& where) { return std::make_exception_ptr(rpc::closed_error(where)); }, fx);
  count();
  if (!calls.empty() || calls.streams() != 0) std::abort();
  for (auto& f : futures)
    if (!f->settled()) std::abort();  // every plain call ended, one way or another
  if (ended > futures.size()) std::abort();
  return 0;
}
