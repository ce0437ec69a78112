// rpc-stream-peer: the two sides of the stream memory test, each in a fresh process so that its resident memory is
// its own.
//   rpc-stream-peer serve ENDPOINT RSS_FILE   serve chunks(count, size) for one call, then write the peak resident
//                                             memory (KiB) to RSS_FILE and exit; started by duct::spawn() (it
//                                             needs DUCT_FD), it exits (status 3) if its duct closes first
//   rpc-stream-peer take-one ENDPOINT HEARTBEAT_MS
//                                             open the stream "endless", take its first item, print "taken", then
//                                             wait to be killed (the SIGKILLed-client test)
//   rpc-stream-peer hold ENDPOINT HEARTBEAT_MS
//                                             serve who() ("peer") and hold(x), which never returns, until killed (the
//                                             spread client's lost-server test)
//   rpc-stream-peer consume ENDPOINT COUNT SIZE
//                                             read COUNT chunks of SIZE bytes, checking every byte (slower than the
//                                             producer), then print "bytes=N peak_kib=K"
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include <duct/spawn.hpp>
#include <rpc/client.hpp>
#include <rpc/server.hpp>

namespace {

long peak_kib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

// A chunk's bytes: its index and position mixed, so a lost, repeated or reordered chunk shows.
unsigned char byte_at(int chunk, std::size_t i) { return static_cast<unsigned char>((static_cast<std::size_t>(chunk) * 31 + i) & 0xff); }

int serve(const std::string& endpoint, const std::string& rss_file) {
  std::promise<void> finished;
  rpc::server s({.threads = 2});
  s.bind("chunks", [&](rpc::sink& out, int count, int size) {
    std::vector<unsigned char> chunk(static_cast<std::size_t>(size));
    for (int c = 0; c < count; ++c) {
      for (std::size_t i = 0; i < chunk.size(); ++i) chunk[i] = byte_at(c, i);
      out.write(chunk);  // a vector of bytes packs as msgpack bin
    }
    finished.set_value();
  });
  s.listen(endpoint);
  s.start();
  // The test that started this peer may end before the call comes (a failed check, an abort): its end of the duct
  // then closes, and the peer goes too rather than wait for a call that will never come.
  duct::connection parent = duct::from_env();
  auto done = finished.get_future();
  while (done.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
    if (parent.poll(std::chrono::milliseconds(100))) {
      std::fprintf(stderr, "rpc-stream-peer: the test that started it has gone (its duct, %s, closed)\n",
                   parent.name().c_str());
      return 3;
    }
  }
  s.shutdown(rpc::shutdown_mode::drain, std::chrono::seconds(30));
  std::ofstream(rss_file) << peak_kib() << "\n";
  return 0;
}

int consume(const std::string& endpoint, int count, int size) {
  rpc::client c(endpoint);
  rpc::source chunks = c.stream("chunks", count, size);
  std::size_t bytes = 0;
  for (int n = 0; n < count; ++n) {
    auto item = chunks.next_for(std::chrono::seconds(30));
    if (!item) {
      std::fprintf(stderr, "the stream ended after %d chunks\n", n);
      return 1;
    }
    const msgpack::object& o = item->get();
    if (o.type != msgpack::type::BIN || o.via.bin.size != static_cast<std::uint32_t>(size)) {
      std::fprintf(stderr, "chunk %d is not %d bytes of bin\n", n, size);
      return 1;
    }
    for (std::size_t i = 0; i < o.via.bin.size; ++i) {
      if (static_cast<unsigned char>(o.via.bin.ptr[i]) != byte_at(n, i)) {
        std::fprintf(stderr, "chunk %d differs at byte %zu\n", n, i);
        return 1;
      }
    }
    bytes += o.via.bin.size;
  }
  if (chunks.next_for(std::chrono::seconds(30))) {
    std::fprintf(stderr, "more chunks than asked for\n");
    return 1;
  }
  std::printf("bytes=%zu peak_kib=%ld\n", bytes, peak_kib());
  return 0;
}

int take_one(const std::string& endpoint, int heartbeat_ms) {
  rpc::client c(endpoint, {.heartbeat = std::chrono::milliseconds(heartbeat_ms)});
  rpc::source items = c.stream("endless");
  if (!items.next_for(std::chrono::seconds(10))) return 1;
  std::printf("taken\n");
  std::fflush(stdout);
  for (;;) ::pause();
}

}  // namespace

int hold(const std::string& endpoint, int heartbeat_ms) {
  rpc::server server({.heartbeat = std::chrono::milliseconds(heartbeat_ms)});
  server.bind("who", [] { return std::string("peer"); });
  server.bind("hold", [](std::stop_token stop, int) {
    while (!stop.stop_requested()) ::pause();
    return 0;
  });
  server.listen(endpoint);
  server.start();
  // Until killed, or until the test's end of our duct closes (a test that failed early): no orphan outlives it.
  duct::connection parent = duct::from_env();
  try {
    while (parent.try_recv()) {
    }
  } catch (const duct::error&) {
    // closed mid-message, or not a duct: the test is gone either way
  }
  std::_Exit(0);
}

int main(int argc, char** argv) {
  try {
    if (argc == 4 && std::strcmp(argv[1], "serve") == 0) return serve(argv[2], argv[3]);
    if (argc == 4 && std::strcmp(argv[1], "take-one") == 0) return take_one(argv[2], std::stoi(argv[3]));
    if (argc == 4 && std::strcmp(argv[1], "hold") == 0) return hold(argv[2], std::stoi(argv[3]));
    if (argc == 5 && std::strcmp(argv[1], "consume") == 0) return consume(argv[2], std::stoi(argv[3]), std::stoi(argv[4]));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "rpc-stream-peer: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: rpc-stream-peer serve ENDPOINT RSS_FILE | take-one ENDPOINT HEARTBEAT_MS | hold ENDPOINT HEARTBEAT_MS | consume ENDPOINT COUNT SIZE\n");
  return 2;
}
