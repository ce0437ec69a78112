// Both ends of a chunked request's input without any transport: the writer sends nothing before the server's
// announcement and never beyond its credit; the call's end (an error, or its result) stops the writer; the reader
// holds its peer to the credit it granted.
#include <catch2/catch.hpp>

#include <future>
#include <string>
#include <vector>

#include <rpc/error.hpp>

#include "stream_state.hpp"
#include "upload_state.hpp"

namespace {

std::span<const std::byte> item() {
  static const std::byte one[] = {std::byte{0x01}};
  return one;
}

struct sent_log {
  std::vector<std::string> names;
  bool call_open = true;  // what the transport answers: false once it has forgotten the call
};

std::shared_ptr<rpc::detail::upload_state> make_upload(sent_log& log) {
  auto up = std::make_shared<rpc::detail::upload_state>("test: sum");
  up->attach([&log](std::string_view name, std::span<const std::byte>) {
    if (!log.call_open) return false;
    log.names.emplace_back(name);
    return true;
  });
  return up;
}

}  // namespace

TEST_CASE("upload state: nothing goes before the announcement, and no chunk beyond the credit",
          "[rpc][chunked][sans-io]") {
  sent_log log;
  auto up = make_upload(log);
  auto blocked = std::async(std::launch::async, [&] { up->write(item()); });
  CHECK(blocked.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);  // not announced yet
  CHECK(log.names.empty());
  up->grant(1);  // the announcement, with zerorpc's one free event: two chunks in all
  blocked.get();
  up->write(item());
  CHECK(log.names == std::vector<std::string>{"CHUNK", "CHUNK"});
  auto third = std::async(std::launch::async, [&] { up->write(item()); });
  CHECK(third.wait_for(std::chrono::milliseconds(50)) == std::future_status::timeout);  // out of credit
  up->grant(5);
  third.get();
  CHECK(log.names.size() == 3);
  CHECK(up->end());  // an end takes no credit
  CHECK(log.names.back() == "CHUNK_DONE");
  CHECK(up->end());  // idempotent: nothing more is sent
  CHECK(log.names.size() == 4);
  CHECK_THROWS_AS(up->write(item()), rpc::closed_error);
  CHECK_THROWS_AS(up->fail("E", "m"), rpc::closed_error);
}

TEST_CASE("upload state: the call's end stops the writer with its error, or with closed once it has its result",
          "[rpc][chunked][sans-io]") {
  sent_log log;
  SECTION("an error, before the announcement (a zerorpc server answering NameError)") {
    auto up = make_upload(log);
    auto blocked = std::async(std::launch::async, [&] { up->write(item()); });
    up->close(std::make_exception_ptr(rpc::unknown_method_error("NameError", "_ductrpc_chunked")));
    CHECK_THROWS_AS(blocked.get(), rpc::unknown_method_error);
    CHECK_THROWS_AS(up->write(item()), rpc::unknown_method_error);  // and on every later write
    CHECK_FALSE(up->end());  // nothing to end: the call is over
    CHECK(up->stop_token().stop_requested());
    CHECK(log.names.empty());
  }
  SECTION("the result, before the input ended (the handler returned early)") {
    auto up = make_upload(log);
    up->grant(10);
    up->write(item());
    up->close(nullptr);
    CHECK_THROWS_WITH(up->write(item()), Catch::Contains("ended before its input did"));
    CHECK_FALSE(up->fail("E", "m"));
  }
  SECTION("the call ends between the credit check and the send: the transport has forgotten it") {
    auto up = make_upload(log);
    up->grant(10);
    log.call_open = false;
    up->close(std::make_exception_ptr(rpc::lost_remote_error("test: sum: lost")));
    CHECK_THROWS_AS(up->write(item()), rpc::lost_remote_error);
    CHECK_FALSE(up->end());
  }
}

TEST_CASE("stream state: a reader that grants credit drops what comes beyond it", "[rpc][chunked][sans-io]") {
  rpc::detail::stream_state in("test: sum", 4);
  CHECK(in.open_window() == 3);  // with the one free event: four in all
  CHECK(in.open_window() == 0);  // open already
  for (int i = 0; i < 4; ++i) CHECK(in.offer(duct::value()));
  CHECK_FALSE(in.offer(duct::value()));  // a fifth: beyond the credit, not kept
  for (int i = 0; i < 4; ++i) CHECK(in.next(std::nullopt));
  in.end();
  CHECK_FALSE(in.next(std::nullopt));
}
