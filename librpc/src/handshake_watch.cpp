#include "handshake_watch.hpp"

#include <cstdint>
#include <cstring>
#include <vector>

#include "zmq_util.hpp"

namespace rpc::detail {

namespace {

std::atomic<std::uint64_t> next_watch{0};

constexpr int watched = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                        ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED;

}  // namespace

handshake_watch::handshake_watch(zmq::context_t& ctx, zmq::socket_t& socket, bool curve)
    : events_(ctx, zmq::socket_type::pair), curve_(curve) {
  const std::string address = "inproc://ductrpc-handshakes-" + std::to_string(next_watch++);
  retry_eintr([&] {  // a failed attempt closes what it made: trying again is safe
    if (zmq_socket_monitor(socket.handle(), address.c_str(), watched) != 0) throw zmq::error_t();
  });
  events_.set(zmq::sockopt::linger, 0);
  retry_eintr([&] { events_.connect(address); });
  fd_ = retry_eintr([&] { return events_.get(zmq::sockopt::fd); });
  // ZeroMQ signals the descriptor only for a message that arrives after a read found nothing: look once now.
  (void)read();
}

std::optional<std::string> handshake_watch::read() noexcept {
  std::vector<zmq::message_t> frames;
  try {
    while (try_recv(events_, frames)) {
      // libzmq's monitor event: [u16 event, u32 value] in host order, then the peer's address.
      if (frames.size() < 2 || frames[0].size() < 6) continue;
      std::uint16_t event = 0;
      std::uint32_t value = 0;
      std::memcpy(&event, frames[0].data(), 2);
      std::memcpy(&value, static_cast<const char*>(frames[0].data()) + 2, 4);
      const std::string peer = frames[1].to_string();
      switch (event) {
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
          shook_hands_ = true;
          connected_ = true;
          failure_.reset();
          break;
        case ZMQ_EVENT_DISCONNECTED:
          connected_ = false;
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
          connected_ = false;
          failure_ = "the server refused our CURVE key (ZAP status " + std::to_string(value) +
                     "): it is not on the server's allow-list";
          break;
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
          failure_ = value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH
                         ? (curve_ ? std::string("the server does not speak CURVE") : std::string("the server requires CURVE (give its public key)"))
                         : "the security handshake with " + peer + " broke the protocol (ZeroMQ error " +
                               std::to_string(value) + ")";
          break;
        default:  // ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL: the server hung up during the handshake
          // After a handshake has succeeded, a hang-up is a server going away or restarting (a reconnection that
          // reached its dying listener), not a refusal: the calls' heartbeats tell that story (lost remote).
          if (shook_hands_) break;
          failure_ = curve_ ? "the CURVE handshake failed: is the server's public key the right one?"
                            : "the handshake failed: the server may require CURVE (give its public key)";
          break;
      }
    }
  } catch (...) {
    // the monitor broke or there is no memory: what we knew stands
  }
  return failure_;
}

}  // namespace rpc::detail
