// duct::connection: framing over a stream socket, one lock per direction. See connection.hpp.
#include <duct/connection.hpp>

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <cstring>

#include "connection_state.hpp"

namespace duct {

namespace detail {
pack_buffer& scratch() {
  thread_local pack_buffer sb(256);
  // Do not keep the memory of an unusually large earlier value for the life of the thread.
  if (sb.size() > (std::size_t{1} << 20)) sb = pack_buffer(256);
  return sb;
}
}  // namespace detail

connection::state::state(int fd_, const options& o, std::string n, direction d)
    : fd(fd_), opts(o), name(std::move(n)), dir(d), rbuf(new std::byte[rbuf_size]) {}

void connection::state::fail() noexcept {
  if (!closed.exchange(true)) ::shutdown(fd.load(), SHUT_RDWR);
}

void connection::state::throw_closed(bool mid_frame) const {
  if (mid_frame) throw closed_error(name + ": peer closed the duct in the middle of a message", true);
  throw closed_error(name + ": peer closed the duct", false);
}

void connection::state::check_can_send() const {
  if (dir == direction::receive_only) throw usage_error(name + ": cannot send on the receive-only end of a one-way duct");
  if (closed.load()) throw closed_error(name + ": duct is closed", false);
}

void connection::state::check_can_recv() const {
  if (dir == direction::send_only) throw usage_error(name + ": cannot receive on the send-only end of a one-way duct");
  if (closed.load()) throw closed_error(name + ": duct is closed", false);
}

void connection::state::write_all(iovec* iov, int iovcnt, const io::deadline& d) {
  std::size_t written = 0;
  const int flags = MSG_NOSIGNAL | (d.infinite() ? 0 : MSG_DONTWAIT);
  while (iovcnt > 0) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = static_cast<std::size_t>(iovcnt);
    ssize_t n = ::sendmsg(fd.load(), &msg, flags);
    if (n < 0) {
      int err = errno;
      if (err == EINTR) continue;
      if (err == EAGAIN || err == EWOULDBLOCK) {
        if (!io::wait_for(fd.load(), POLLOUT, d, name + ": send")) {
          if (written > 0) {
            fail();
            throw timeout_error(name + ": send timed out in the middle of a message; the duct is closed", true);
          }
          throw timeout_error(name + ": send timed out");
        }
        continue;
      }
      if (closed.load()) throw closed_error(name + ": duct is closed", false);
      io::throw_errno(err, name + ": send");  // EPIPE and ECONNRESET: the peer closed the duct (closed_error)
    }
    auto done = static_cast<std::size_t>(n);
    written += done;
    while (iovcnt > 0 && done >= iov->iov_len) {
      done -= iov->iov_len;
      ++iov;
      --iovcnt;
    }
    if (iovcnt > 0) {
      iov->iov_base = static_cast<char*>(iov->iov_base) + done;
      iov->iov_len -= done;
    }
  }
}

bool connection::state::fill(const io::deadline& d) {
  if (rpos == rend) {
    rpos = rend = 0;
  } else if (rend == rbuf_size) {
    std::memmove(rbuf.get(), rbuf.get() + rpos, rend - rpos);
    rend -= rpos;
    rpos = 0;
  }
  const int flags = d.infinite() ? 0 : MSG_DONTWAIT;
  for (;;) {
    ssize_t n = ::recv(fd.load(), rbuf.get() + rend, rbuf_size - rend, flags);
    if (n > 0) {
      rend += static_cast<std::size_t>(n);
      return true;
    }
    if (n == 0) {
      eof = true;
      return true;
    }
    int err = errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (!io::wait_for(fd.load(), POLLIN, d, name + ": recv")) return false;
      continue;
    }
    if (closed.load()) throw closed_error(name + ": duct is closed", false);
    if (err == ECONNRESET) {
      eof = true;
      return true;
    }
    io::throw_errno(err, name + ": recv");
  }
}

bool connection::state::read_frame(payload_sink& sink, std::uint64_t limit, const io::deadline& caller) {
  std::optional<frame_header> h;
  // Until the message's first byte, the caller's deadline; from then on, at most frame_timeout more.
  std::optional<io::deadline> framed;
  auto deadline_now = [&]() -> const io::deadline& {
    if (!framed && rend > rpos) framed = caller.within(opts.frame_timeout);
    return framed ? *framed : caller;
  };
  for (;;) {
    try {
      h = parse_header(opts.framing, {rbuf.get() + rpos, rend - rpos}, limit, name);
    } catch (const protocol_error&) {
      fail();
      throw;
    }
    if (h) break;
    bool mid = rend > rpos;
    if (eof) {
      if (closed.load()) throw closed_error(name + ": duct is closed", false);  // woken by close()
      if (!mid) return false;
      fail();
      throw_closed(true);
    }
    if (!fill(deadline_now())) {
      if (mid) {
        fail();
        throw timeout_error(name + ": recv timed out in the middle of a message; the duct is closed", true);
      }
      throw timeout_error(name + ": recv timed out");
    }
  }
  rpos += h->header_size;
  const auto size = static_cast<std::size_t>(h->payload_size);
  const std::size_t have = rend - rpos;
  if (size <= have) {
    std::span<const std::byte> payload(rbuf.get() + rpos, size);
    rpos += size;  // consumed even if the sink cannot decode it: the stream stays in step
    sink.whole(payload);
    return true;
  }
  if (!framed) framed = caller.within(opts.frame_timeout);  // the header is in: the message has begun
  const io::deadline& d = *framed;
  std::span<std::byte> dest = sink.room(size);
  std::memcpy(dest.data(), rbuf.get() + rpos, have);
  rpos = rend = 0;
  std::size_t got = have;
  const int flags = d.infinite() ? 0 : MSG_DONTWAIT;
  while (got < size) {
    ssize_t n = ::recv(fd.load(), dest.data() + got, size - got, flags);
    if (n > 0) {
      got += static_cast<std::size_t>(n);
      continue;
    }
    int err = n == 0 ? 0 : errno;
    if (err == EINTR) continue;
    if (err == EAGAIN || err == EWOULDBLOCK) {
      if (io::wait_for(fd.load(), POLLIN, d, name + ": recv")) continue;
      fail();
      throw timeout_error(name + ": recv timed out in the middle of a message; the duct is closed", true);
    }
    if (err == 0 || err == ECONNRESET) {
      eof = true;
      bool was_closed = closed.load();
      fail();
      if (was_closed) throw closed_error(name + ": duct is closed", false);
      throw_closed(true);
    }
    fail();
    io::throw_errno(err, name + ": recv");
  }
  sink.filled();
  return true;
}

bool connection::state::frame_ready() {
  if (eof) return true;
  try {
    auto h = parse_header(opts.framing, {rbuf.get() + rpos, rend - rpos}, opts.max_message_size, name);
    if (!h) return false;
    // A message larger than the buffer cannot be seen whole here; once the buffer is full, call it ready.
    return rend - rpos >= h->header_size + h->payload_size || rend - rpos == rbuf_size;
  } catch (const protocol_error&) {
    return true;  // recv will report it at once
  }
}

// ---- connection ----------------------------------------------------------------------------------------------------

connection::connection() noexcept = default;
connection::connection(std::unique_ptr<state> s) noexcept : state_(std::move(s)) {}
connection::connection(connection&&) noexcept = default;
connection& connection::operator=(connection&& other) noexcept {
  if (this != &other) {
    close();
    state_ = std::move(other.state_);
  }
  return *this;
}
connection::~connection() { close(); }

connection connection::adopt(int fd, const options& opts, std::string name, direction dir) {
  if (fd < 0) throw usage_error("cannot adopt a negative file descriptor");
  if (name.empty()) name = "fd " + std::to_string(fd);
  return connection(std::make_unique<state>(fd, opts, std::move(name), dir));
}

namespace {

const std::string& closed_name() {
  static const std::string n = "closed duct";
  return n;
}

connection::state& live(const std::unique_ptr<connection::state>& s) {
  if (!s) throw closed_error("duct is closed (default-constructed or moved from)", false);
  return *s;
}

class buffer_sink final : public payload_sink {
 public:
  void whole(std::span<const std::byte> payload) override { result = buffer(payload); }
  std::span<std::byte> room(std::size_t n) override {
    result = buffer(n);
    return result.span();
  }
  void filled() override {}
  buffer result;
};

class value_sink final : public payload_sink {
 public:
  explicit value_sink(const options& o) : opts_(o) {}
  void whole(std::span<const std::byte> payload) override { result = decode(opts_.codec, payload, opts_.limits); }
  std::span<std::byte> room(std::size_t n) override {
    big_ = buffer(n);
    return big_.span();
  }
  void filled() override { result = decode(opts_.codec, big_.span(), opts_.limits); }
  value result;

 private:
  const options& opts_;
  buffer big_;
};

class into_sink final : public payload_sink {
 public:
  explicit into_sink(std::span<std::byte> out) : out_(out) {}
  void whole(std::span<const std::byte> payload) override {
    size = payload.size();
    if (size <= out_.size()) std::memcpy(out_.data(), payload.data(), size);
    else overflow = buffer(payload);
  }
  std::span<std::byte> room(std::size_t n) override {
    size = n;
    if (n <= out_.size()) return out_.first(n);
    overflow = buffer(n);
    return overflow.span();
  }
  void filled() override {}
  std::size_t size = 0;
  buffer overflow;

 private:
  std::span<std::byte> out_;
};

std::uint64_t recv_limit(const connection::state& s, std::size_t max_length) {
  return max_length < s.opts.max_message_size ? max_length : s.opts.max_message_size;
}

}  // namespace

void connection::send_bytes(std::span<const std::byte> bytes, timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  std::array<std::byte, max_header_size> header;
  std::size_t header_size = encode_header(s.opts.framing, bytes.size(), std::span<std::byte, max_header_size>(header));
  iovec iov[2] = {{header.data(), header_size}, {const_cast<std::byte*>(bytes.data()), bytes.size()}};
  std::lock_guard lock(s.send_mu);
  s.check_can_send();
  s.write_all(iov, bytes.empty() ? 1 : 2, d);
}

void connection::send_bytes(std::string_view text, timeout t) {
  send_bytes(std::as_bytes(std::span(text.data(), text.size())), t);
}

void connection::send_packed(std::span<const std::byte> packed, timeout t) {
  const state& s = live(state_);
  if (s.opts.codec == codec::msgpack) {
    send_bytes(packed, t);
  } else {
    buffer payload = encode(s.opts.codec, packed);
    send_bytes(payload.span(), t);
  }
}

buffer connection::recv_bytes(timeout t) { return recv_bytes(SIZE_MAX, t); }

buffer connection::recv_bytes(std::size_t max_length, timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  buffer_sink sink;
  std::lock_guard lock(s.recv_mu);
  s.check_can_recv();
  if (!s.read_frame(sink, recv_limit(s, max_length), d)) s.throw_closed(false);
  return std::move(sink.result);
}

std::optional<buffer> connection::try_recv_bytes(timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  buffer_sink sink;
  std::lock_guard lock(s.recv_mu);
  s.check_can_recv();
  if (!s.read_frame(sink, s.opts.max_message_size, d)) return std::nullopt;
  return std::move(sink.result);
}

std::size_t connection::recv_bytes_into(std::span<std::byte> out, timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  into_sink sink(out);
  std::lock_guard lock(s.recv_mu);
  s.check_can_recv();
  if (!s.read_frame(sink, s.opts.max_message_size, d)) s.throw_closed(false);
  if (sink.size > out.size()) {
    throw buffer_too_short(s.name + ": message of " + std::to_string(sink.size) + " bytes does not fit a buffer of " +
                               std::to_string(out.size()) + " bytes",
                           std::move(sink.overflow));
  }
  return sink.size;
}

value connection::recv(timeout t) {
  auto v = try_recv(t);
  if (!v) live(state_).throw_closed(false);
  return std::move(*v);
}

std::optional<value> connection::try_recv(timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  value_sink sink(s.opts);
  std::lock_guard lock(s.recv_mu);
  s.check_can_recv();
  if (!s.read_frame(sink, s.opts.max_message_size, d)) return std::nullopt;
  return std::move(sink.result);
}

bool connection::poll(timeout t) {
  state& s = live(state_);
  io::deadline d(t);
  std::lock_guard lock(s.recv_mu);
  s.check_can_recv();
  for (;;) {
    if (s.frame_ready()) return true;
    if (!s.fill(d)) return false;
  }
}

int connection::fileno() const noexcept { return state_ ? state_->fd.load() : -1; }
const std::string& connection::name() const noexcept { return state_ ? state_->name : closed_name(); }
const options& connection::opts() const noexcept {
  static const options defaults;
  return state_ ? state_->opts : defaults;
}
bool connection::closed() const noexcept { return !state_ || state_->closed.load(); }
bool connection::readable() const noexcept { return state_ && state_->dir != direction::send_only; }
bool connection::writable() const noexcept { return state_ && state_->dir != direction::receive_only; }

void connection::shutdown_write() {
  state& s = live(state_);
  std::lock_guard lock(s.send_mu);
  s.check_can_send();
  if (::shutdown(s.fd.load(), SHUT_WR) < 0) io::throw_errno(errno, s.name + ": shutdown");
}

void connection::close() noexcept {
  if (!state_ || state_->close_started.exchange(true)) return;
  state& s = *state_;
  s.closed = true;
  // A thread of ours blocked on this duct holds its lock: only then wake it by shutting the socket down. Otherwise
  // leave the socket alone, so that closing a copy inherited across fork() does not disturb the other process.
  bool have_send = s.send_mu.try_lock();
  bool have_recv = s.recv_mu.try_lock();
  if (!have_send || !have_recv) ::shutdown(s.fd.load(), SHUT_RDWR);
  if (!have_send) s.send_mu.lock();
  if (!have_recv) s.recv_mu.lock();
  io::close_fd(s.fd.exchange(-1));
  s.recv_mu.unlock();
  s.send_mu.unlock();
}

}  // namespace duct
