// Streams: a method that answers with many items instead of one result (zerorpc's STREAM / STREAM_DONE, with
// _zpc_more credit), so zerorpc-python and zerorpc-node clients iterate it as they iterate their own streams.
//
// Server side: a handler whose first parameter is rpc::sink& streams. Each write() sends one item; returning ends
// the stream cleanly; throwing ends it with that error, which the client sees as an error, never as a clean end.
//
//   server.bind("count", [](rpc::sink& out, int n) { for (int i = 0; i < n; ++i) out.write(i); });
//
// Client side: client.stream() starts the call and returns an rpc::source; next() returns the next item, or an
// empty optional once the stream has ended cleanly.
//
//   rpc::source items = client.stream("count", 3);
//   while (auto item = items.next()) use(item->as<int>());
//
// Flow control: the client grants credit as its consumer reads (client_options::stream_window and
// stream_window_bytes bound what is buffered or on its way), and the handler's write() waits while it has none:
// memory stays bounded on both sides however fast the producer is. Dropping a source before its end stops the
// producer: its next write() throws cancelled_error (at once with our server; a zerorpc server notices when the
// heartbeats stop).
//
// The other direction, a chunked request: a handler whose first parameter is rpc::source& reads the items the client
// writes into an rpc::duplex (client::chunked_call); with rpc::sink& second it streams its reply as it reads.
//
//   server.bind("sum", [](rpc::source& in) { long t = 0; while (auto x = in.next()) t += x->as<long>(); return t; });
//   rpc::duplex call = client.chunked_call("sum");
//   for (long x : xs) call.write(x);
//   long total = call.finish().as<long>();
//
// The server grants the client credit (server_options::input_window items) as the handler reads, so the input too
// stays bounded. This is our extension (see upload_state.hpp for its events): only our server reads chunked requests.
//
// Failures, the same over ZeroMQ and over a duct (rpc::link): client.stream() and chunked_call() throw only
// closed_error, for a client (or link) closed by its owner; a request that cannot go (a broken duct, a refused
// handshake) is reported by the returned source's next() and the duplex's write() and finish(). A chunk that
// cannot be sent, or a server gone silent for two heartbeat periods, ends the whole call with lost_remote_error:
// the write() that finds it throws it, and so does the reply's next().
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <stop_token>

#include <duct/buffer.hpp>
#include <duct/codec.hpp>
#include <duct/msgpack.hpp>
#include <rpc/error.hpp>

namespace rpc {

/// Where a streaming handler writes its items. Only the handler's own thread may use it.
class sink {
 public:
  virtual ~sink() = default;

  /// Sends one item, waiting while the client has granted no credit.
  /// Throws: cancelled_error if the call was cancelled (the client dropped its source or the server shuts down),
  /// lost_remote_error if the client went silent or its connection closed. Either way, stop producing.
  template <class T>
  void write(const T& item) {
    scratch_.clear();  // reused: a stream of large items does not allocate and grow a buffer for each
    msgpack::pack(scratch_, item);
    write_packed(std::as_bytes(std::span(scratch_.data(), scratch_.size())));
  }
  /// As write(), with an item that is already packed msgpack (one value).
  virtual void write_packed(std::span<const std::byte> item) = 0;

  /// The call's cancellation, also stopped when the client is lost: check it between expensive steps.
  [[nodiscard]] virtual std::stop_token stop_token() const = 0;

 private:
  duct::pack_buffer scratch_;
};

/// Where a handler reports progress before its result (WAMP's progressive call results). A handler takes it as its
/// first parameter (`rpc::progress&`) and returns its result as usual. Reports go only to a caller that asked for
/// them (client::call_with_progress); for any other caller report() does nothing. Reporting never blocks: while the
/// caller has granted no credit, a newer report replaces the one still waiting, since progress is a latest state.
class progress {
 public:
  virtual ~progress() = default;

  /// Sends `value` as the call's latest progress (or keeps it until the caller's credit allows).
  template <class T>
  void report(const T& value) {
    if (!wanted()) return;
    scratch_.clear();
    msgpack::pack(scratch_, value);
    report_packed(std::as_bytes(std::span(scratch_.data(), scratch_.size())));
  }
  /// As report(), with a value that is already packed msgpack (one value).
  virtual void report_packed(std::span<const std::byte> value) = 0;
  /// Whether the caller asked for progress: when not, there is no need to compute it.
  [[nodiscard]] virtual bool wanted() const = 0;
  /// The call's cancellation, as for any handler.
  [[nodiscard]] virtual std::stop_token stop_token() const = 0;

 private:
  duct::pack_buffer scratch_;
};

namespace detail {
class stream_state;
class upload_state;
struct access;  // how the library makes sources and duplexes (librpc/src/access.hpp)
}  // namespace detail

/// The client's end of a streamed reply. Move-only. Destroying it before the end stops the producer.
class source {
 public:
  source(source&&) noexcept;
  source& operator=(source&&) noexcept;
  ~source();

  /// Waits for the next item. Returns: the item, or nothing once the stream has ended cleanly (and on every call
  /// after that). Throws: the error that ended the stream — remote_error (the producer's exception),
  /// lost_remote_error (the server went silent or its connection closed), cancelled_error, closed_error — again on
  /// every later call.
  std::optional<duct::value> next();
  /// As next(), waiting at most `limit` for the item. Throws also: timeout_error if none came within `limit`, which
  /// ends the stream (the producer is stopped) — a stalled stream does not hang its consumer.
  std::optional<duct::value> next_for(std::chrono::milliseconds limit);
  /// Stops the stream now (as destroying the source does); next() then throws cancelled_error. Idempotent.
  void cancel() noexcept;

 private:
  friend struct detail::access;
  explicit source(std::shared_ptr<detail::stream_state> state) noexcept;
  std::shared_ptr<detail::stream_state> state_;
};

}  // namespace rpc

namespace rpc {

/// The client's end of a call whose request is a stream of items (client::chunked_call): write the input, end() it,
/// then read the reply from output() — or finish() for a method that answers with one result. The handler reads the
/// input from an rpc::source (its first parameter) and may stream its reply at the same time (rpc::sink& second):
/// each direction has its own credit, so neither side ever buffers more than its window. Move-only; one thread
/// writes. Destroying it before the call ended stops the call (the handler's next read throws cancelled_error).
class duplex final : public sink {
 public:
  duplex(duplex&&) noexcept;
  duplex& operator=(duplex&&) noexcept;
  ~duplex() override;

  /// Sends one item of the input (write() packs it), waiting while the server has granted no credit.
  /// Throws: the error the call ended with — remote_error (the handler's), unknown_method_error (also from a
  /// server that does not read chunked requests: zerorpc's own), lost_remote_error (the server went silent, or
  /// this chunk could not be sent: the call ends), cancelled_error —;
  /// closed_error after end(), or when the handler returned before reading all of it (its outcome is in output()).
  void write_packed(std::span<const std::byte> item) override;
  /// Stopped once the call has ended: a producer can stop early.
  [[nodiscard]] std::stop_token stop_token() const override;

  /// Ends the input cleanly: the handler's next read returns nothing. Idempotent; does nothing once the call ended.
  void end();
  /// Ends the input with an error: the handler's next read throws remote_error(name, message). Does nothing once the
  /// call ended. Throws: closed_error if the input was ended already.
  void fail(const std::string& name, const std::string& message);

  /// The reply: the handler's stream, or its one result as the only item; errors as for any rpc::source.
  source& output() noexcept { return out_; }
  /// end(), then the reply's result. Returns: the first item of output() (the one result of a method that does not
  /// stream). Throws: the call's error; protocol_error if the reply ended without an item.
  duct::value finish();
  /// Stops the call now (as destroying it does). Idempotent.
  void cancel() noexcept;

 private:
  friend struct detail::access;
  duplex(std::shared_ptr<detail::upload_state> in, source out) noexcept;
  std::shared_ptr<detail::upload_state> in_;
  source out_;
};

}  // namespace rpc
