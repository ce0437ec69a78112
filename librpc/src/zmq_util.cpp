#include "zmq_util.hpp"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <climits>
#include <cstring>

#include <rpc/error.hpp>

namespace rpc::detail {

void check_endpoint(std::string_view endpoint) {
  if (!endpoint.starts_with("tcp://")) return;
  const std::size_t colon = endpoint.rfind(':');
  const std::string_view port = colon < 6 ? std::string_view() : endpoint.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  const bool any = port == "*";
  if (!any && (port.empty() || ec != std::errc() || end != port.data() + port.size() || value > 65535))
    throw error(std::string(endpoint) + ": the port must be a number from 0 to 65535");
}

std::string bind_endpoint(zmq::socket_t& socket, std::string_view endpoint) {
  check_endpoint(endpoint);
  std::string ep(endpoint);
  if (ep.starts_with("tcp://") && ep.ends_with(":0")) ep.replace(ep.size() - 1, 1, "*");  // ZeroMQ's "any port"
  try {
    retry_eintr([&] { socket.bind(ep); });
  } catch (const zmq::error_t& e) {
    throw error("cannot listen on " + std::string(endpoint) + ": " + e.what());
  }
  return socket.get(zmq::sockopt::last_endpoint);
}

void poll_fds(pollfd* fds, std::size_t count, std::chrono::milliseconds wait) {
  const int timeout = wait.count() < 0 ? -1 : static_cast<int>(std::min<std::chrono::milliseconds::rep>(wait.count(), INT_MAX));
  if (::poll(fds, count, timeout) >= 0) return;
  if (errno != EINTR) throw error(std::string("poll: ") + std::strerror(errno));
  for (std::size_t i = 0; i < count; ++i) fds[i].revents = 0;
}

bool send_part(zmq::socket_t& socket, zmq::const_buffer part, zmq::send_flags flags) {
  return retry_eintr([&] { return socket.send(part, flags).has_value(); });
}

bool has_input(zmq::socket_t& socket) {
  return retry_eintr([&] { return (socket.get(zmq::sockopt::events) & ZMQ_POLLIN) != 0; });
}

bool try_recv(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  return retry_eintr([&] {
    frames.clear();
    return zmq::recv_multipart(socket, std::back_inserter(frames), zmq::recv_flags::dontwait).has_value();
  });
}

bool recv_within(zmq::socket_t& socket, std::vector<zmq::message_t>& frames) {
  return retry_eintr([&] {
    frames.clear();
    return zmq::recv_multipart(socket, std::back_inserter(frames)).has_value();
  });
}

std::string peer_address(const zmq::message_t& message) noexcept {
  try {
    const char* address = zmq_msg_gets(message.handle(), "Peer-Address");
    if (address && *address) return address;
  } catch (...) {
    // no memory for the string: the log line goes without it
  }
  return "ipc";
}

std::string peer_key(const zmq::message_t& message) noexcept {
  try {
    const char* key = zmq_msg_gets(message.handle(), "User-Id");
    if (key) return key;
  } catch (...) {
    // no memory for the string: the jobs of this client then have no owner
  }
  return {};
}

}  // namespace rpc::detail
