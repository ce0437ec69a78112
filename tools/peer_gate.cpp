#include "peer_gate.hpp"

#include <cstdio>
#include <atomic>
#include <thread>

#include <duct/auth.hpp>

namespace tools {

struct peer_gate::shared {
  duct::listener listener;
  std::string key;
  std::size_t at_once;
  std::chrono::milliseconds limit;
  std::mutex mu;
  std::condition_variable changed;
  std::deque<duct::connection> passed;
  std::size_t checking = 0;
  bool broken = false;
  std::atomic<bool> stopping{false};
};

namespace {

// Runs the accepting side of multiprocessing's handshake on `c`: challenge it, then answer its challenge.
void authenticate(duct::connection& c, const std::string& key, std::chrono::milliseconds limit) {
  duct::auth::deliver_challenge(c, key, limit);
  duct::auth::answer_challenge(c, key, limit);
}

}  // namespace

peer_gate::peer_gate(duct::listener l, std::string key, std::size_t at_once, std::chrono::milliseconds limit)
    : s_(std::make_shared<shared>()) {
  s_->listener = std::move(l);
  s_->key = std::move(key);
  s_->at_once = at_once;
  s_->limit = limit;
  acceptor_ = std::thread([s = s_] {
    while (!s->stopping) {
      {
        std::unique_lock lock(s->mu);
        s->changed.wait(lock, [&] { return s->checking < s->at_once || s->stopping; });
        if (s->stopping) break;
        ++s->checking;
      }
      duct::connection c;
      try {
        c = s->listener.accept(std::chrono::milliseconds(100));  // a while at a time, to notice `stopping`
      } catch (const duct::timeout_error&) {
        std::lock_guard lock(s->mu);
        --s->checking;
        continue;
      } catch (const std::exception& e) {
        std::fprintf(stderr, "duct-cat: %s: %s\n", s->listener.address().c_str(), e.what());
        std::lock_guard lock(s->mu);
        s->broken = true;
        s->changed.notify_all();
        return;
      }
      std::thread([s, c = std::move(c)]() mutable {
        bool ok = false;
        try {
          authenticate(c, s->key, s->limit);
          ok = true;
        } catch (const std::exception& e) {
          std::fprintf(stderr, "duct-cat: a peer of %s failed the handshake: %s\n", s->listener.address().c_str(), e.what());
        }
        std::lock_guard lock(s->mu);
        --s->checking;
        if (ok) s->passed.push_back(std::move(c));
        s->changed.notify_all();
      }).detach();
    }
    s->listener.close();  // by this thread, the only one using it: a Unix socket's file goes with it
  });
}

peer_gate::~peer_gate() {
  {
    std::lock_guard lock(s_->mu);
    s_->stopping = true;
  }
  s_->changed.notify_all();
  acceptor_.join();
}

duct::connection peer_gate::next() {
  std::unique_lock lock(s_->mu);
  s_->changed.wait(lock, [&] { return !s_->passed.empty() || s_->broken; });
  if (s_->passed.empty()) throw duct::closed_error("the listener at " + s_->listener.address() + " failed", false);
  duct::connection c = std::move(s_->passed.front());
  s_->passed.pop_front();
  return c;
}

}  // namespace tools
