// ZAP for CURVE servers. See zap_handler.hpp.
#include "zap_handler.hpp"

#include <array>
#include <cstdio>
#include <vector>

#include "zmq_util.hpp"

namespace rpc::detail {
namespace {

std::string z85(const zmq::message_t& key) {
  if (key.size() != 32) return "(not a CURVE key)";
  std::array<char, 41> text{};
  zmq_z85_encode(text.data(), static_cast<const std::uint8_t*>(key.data()), 32);
  return text.data();
}

}  // namespace

zap_handler::zap_handler(zmq::context_t& ctx, std::set<std::string> allowed, refused_fn on_refused)
    : allowed_(std::move(allowed)),
      on_refused_(std::move(on_refused)),
      rep_(ctx, zmq::socket_type::rep),
      stop_rx_(ctx, zmq::socket_type::pair),
      stop_tx_(ctx, zmq::socket_type::pair) {
  rep_.set(zmq::sockopt::linger, 0);
  rep_.bind("inproc://zeromq.zap.01");
  char name[64];
  std::snprintf(name, sizeof name, "inproc://ductrpc-zap-stop-%p", static_cast<void*>(this));
  retry_eintr([&] { stop_rx_.bind(name); });
  retry_eintr([&] { stop_tx_.connect(name); });
  thread_ = std::thread([this] { loop(); });
}

zap_handler::~zap_handler() {
  try {
    stop_tx_.send(zmq::str_buffer("stop"), zmq::send_flags::dontwait);
  } catch (const zmq::error_t&) {
    // the loop then ends when the context closes
  }
  thread_.join();
}

// Each request: version, request id, domain, address, routing id, mechanism, then the credentials (for CURVE the
// client's 32-byte public key). The answer: version, request id, status code, status text, user id, metadata.
void zap_handler::loop() {
  std::vector<zmq::message_t> request;
  for (;;) {
    zmq::pollitem_t items[] = {{rep_.handle(), 0, ZMQ_POLLIN, 0}, {stop_rx_.handle(), 0, ZMQ_POLLIN, 0}};
    try {
      zmq::poll(items, 2, std::chrono::milliseconds(-1));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;
      return;
    }
    if (items[1].revents & ZMQ_POLLIN) return;
    if (!(items[0].revents & ZMQ_POLLIN)) continue;
    request.clear();
    try {
      if (!zmq::recv_multipart(rep_, std::back_inserter(request), zmq::recv_flags::dontwait)) continue;
    } catch (const zmq::error_t&) {
      return;
    }
    const bool well_formed = request.size() >= 7 && request[0].to_string_view() == "1.0";
    const std::string mechanism = request.size() > 5 ? request[5].to_string() : "";
    const std::string address = request.size() > 3 ? request[3].to_string() : "";
    const std::string key = well_formed && mechanism == "CURVE" ? z85(request[6]) : "";
    const bool admitted = !key.empty() && (allowed_.empty() || allowed_.count(key) != 0);
    if (!admitted && on_refused_) {
      try {
        on_refused_(key.empty() ? "(" + (mechanism.empty() ? std::string("no") : mechanism) + " mechanism)" : key,
                    address);
      } catch (...) {
        // a logger that fails must not stop the handshakes
      }
    }
    std::array<zmq::const_buffer, 6> reply = {
        zmq::str_buffer("1.0"),
        zmq::buffer(request.size() > 1 ? request[1].data() : nullptr, request.size() > 1 ? request[1].size() : 0),
        admitted ? zmq::str_buffer("200") : zmq::str_buffer("400"),
        admitted ? zmq::str_buffer("OK") : zmq::str_buffer("client key not allowed"),
        zmq::buffer(key.data(), admitted ? key.size() : 0),
        zmq::str_buffer("")};
    try {
      zmq::send_multipart(rep_, reply);
    } catch (const zmq::error_t&) {
      return;
    }
  }
}

}  // namespace rpc::detail
