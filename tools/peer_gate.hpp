// duct-cat --listen with an authkey: peers are authenticated side by side, so that a silent or failing peer holds
// up nobody (one at a time, each silent peer cost the next one the handshake's 10 s) and never ends the listener.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <duct/listener.hpp>

namespace tools {

class peer_gate {
 public:
  /// Takes peers from `l` (made without an authkey) and authenticates each with `key`, at most `at_once` at a time
  /// (more wait their turn in the listen backlog), each within `limit`. A failed peer is reported on stderr as
  /// "duct-cat: PEER: ..." and dropped. Throws: nothing; the handshakes in progress outlive it safely.
  peer_gate(duct::listener l, std::string key, std::size_t at_once = 16,
            std::chrono::milliseconds limit = std::chrono::seconds(10));
  /// Stops accepting and closes the listener (removing a Unix socket's file).
  ~peer_gate();
  peer_gate(const peer_gate&) = delete;
  peer_gate& operator=(const peer_gate&) = delete;
  /// The next authenticated peer, in the order they passed (waits for one). Throws: duct::closed_error if the
  /// listener failed.
  duct::connection next();

 private:
  struct shared;
  std::shared_ptr<shared> s_;
  std::thread acceptor_;
};

}  // namespace tools
