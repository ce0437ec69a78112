// rpc::client over several servers without a broker (client.hpp): one ZeroMQ client per endpoint, and each call
// goes whole to one of them — its request, heartbeats, credit and chunks ride that server's DEALER, so a call and
// all its events stay with one server (the stickiness a broker gives; docs/broker.md).
//
// Which server: the least loaded (its open calls through this client) of those whose connection is up and who
// have not lately lost a call; ties rotate. A server that is not connected (down, not started yet, refusing our
// handshake) gets no calls while another is up. Tokens (_ductrpc_poll/wait/cancel) go to the server that issued
// them: remembered when a submit() here returned them, otherwise found by asking each connected server.
#include <condition_variable>
#include <deque>
#include <memory>
#include <unordered_map>

#include "client_impl.hpp"
#include "zmq_client.hpp"

namespace rpc {
namespace detail {
namespace {

constexpr std::size_t max_endpoints = 64;       // each costs two threads and a ZeroMQ context
constexpr std::size_t remembered_tokens = 4096;  // token -> server, oldest forgotten first

bool is_token_method(std::string_view m) {
  return m == "_ductrpc_poll" || m == "_ductrpc_wait" || m == "_ductrpc_cancel";
}

// The token of a _ductrpc_poll/wait/cancel request: its first argument, if a string.
std::optional<std::string> token_of(const duct::buffer& packed_args) {
  try {
    duct::value v = duct::decode(duct::codec::msgpack, packed_args.span());
    const msgpack::object& o = v.get();
    if (o.type != msgpack::type::ARRAY || o.via.array.size == 0 || o.via.array.ptr[0].type != msgpack::type::STR)
      return std::nullopt;
    return o.via.array.ptr[0].as<std::string>();
  } catch (const duct::error&) {
    return std::nullopt;
  }
}

duct::buffer pack_token(const std::string& token) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_array(1);
  p.pack(token);
  return out.take();
}

struct spread_client final : client::impl {
  spread_client(std::string joined, const std::vector<std::string>& endpoints, client_options o)
      : impl(std::move(joined), o), shunned_until(endpoints.size()), busy(endpoints.size()) {
    auto changed = [this] {
      { std::lock_guard lock(mu); }  // a picker between its check and its wait sees the change
      up_changed.notify_all();
    };
    for (const std::string& ep : endpoints) servers.push_back(std::make_unique<zmq_client>(ep, o, changed));
  }
  ~spread_client() override {
    servers.clear();  // first: their I/O threads call back into this
  }

  duct::value call(std::string_view method, const duct::buffer& packed_args,
                   std::optional<std::chrono::milliseconds> limit) override {
    const std::size_t i = is_token_method(method) ? holder(method, packed_args, limit) : pick(limit_of(limit));
    in_flight counted(busy[i]);
    try {
      duct::value v = servers[i]->call(method, packed_args, limit);
      if (method == "_ductrpc_submit" && v.get().type == msgpack::type::STR) remember(v.as<std::string>(), i);
      return v;
    } catch (const lost_remote_error&) {
      shun(i);
      throw;
    } catch (const connection_error&) {
      shun(i);
      throw;
    }
  }
  future start(std::string_view method, const duct::buffer& packed_args,
               std::optional<std::chrono::milliseconds> limit) override {
    const std::size_t i = is_token_method(method) ? holder(method, packed_args, limit) : pick(limit_of(limit));
    return servers[i]->start(method, packed_args, limit);
  }
  std::shared_ptr<stream_state> stream(std::string_view method, const duct::buffer& packed_args,
                                       bool progress) override {
    return servers[pick(limit_of(std::nullopt))]->stream(method, packed_args, progress);
  }
  chunked_halves chunked(std::string_view method, const duct::buffer& packed_args, bool oneway) override {
    return servers[pick(std::nullopt)]->chunked(method, packed_args, oneway);
  }
  void publish(std::string_view method, const duct::buffer& packed_args) override {
    servers[pick(std::nullopt)]->publish(method, packed_args);
  }

 private:
  // Counts a blocking call in flight on a server.
  struct in_flight {
    explicit in_flight(std::atomic<std::size_t>& n) : n_(n) { ++n_; }
    ~in_flight() { --n_; }
    in_flight(const in_flight&) = delete;
    in_flight& operator=(const in_flight&) = delete;
    std::atomic<std::size_t>& n_;
  };

  [[nodiscard]] bool usable(std::size_t i, clock::time_point now) const {
    return servers[i]->up && now >= shunned_until[i];
  }

  // The server for a new call. With none connected it waits for one, up to a heartbeat period (or the call's
  // limit); then it takes the next in turn, where the call waits for a connection as a one-server client's would.
  std::size_t pick(std::optional<std::chrono::milliseconds> limit) {
    std::unique_lock lock(mu);
    auto any_up = [this] {
      for (const auto& s : servers)
        if (s->up) return true;
      return false;
    };
    if (!any_up()) {
      auto wait = opts.heartbeat;
      if (limit) wait = std::min(wait, *limit);
      up_changed.wait_for(lock, wait, any_up);
    }
    const auto now = clock::now();
    std::optional<std::size_t> best;
    std::size_t best_load = 0;
    // Connected and in good standing first; else connected; else anyone.
    for (int pass = 0; pass < 3 && !best; ++pass) {
      for (std::size_t k = 0; k < servers.size(); ++k) {
        const std::size_t i = (next + k) % servers.size();
        if (pass == 0 && !usable(i, now)) continue;
        if (pass == 1 && !servers[i]->up) continue;
        const std::size_t load = busy[i] + servers[i]->open_calls();
        if (!best || load < best_load) best = i, best_load = load;
      }
    }
    next = (*best + 1) % servers.size();
    return *best;
  }

  // The server that issued the token of a _ductrpc_poll/wait/cancel request.
  std::size_t holder(std::string_view method, const duct::buffer& packed_args,
                     std::optional<std::chrono::milliseconds> limit) {
    const std::optional<std::string> token = token_of(packed_args);
    if (!token) return pick(limit_of(limit));  // malformed: any server says so
    {
      std::lock_guard lock(mu);
      if (auto it = tokens.find(*token); it != tokens.end()) return it->second;
    }
    // Ask each connected server (every server if none is); the first that knows it holds it.
    bool asked = false;
    for (int pass = 0; pass < 2 && !(pass == 1 && asked); ++pass) {
      for (std::size_t i = 0; i < servers.size(); ++i) {
        if (pass == 0 && !servers[i]->up) continue;
        asked = true;
        try {
          (void)servers[i]->call("_ductrpc_poll", pack_token(*token), 2 * opts.heartbeat);
          remember(*token, i);
          return i;
        } catch (const error&) {
          // unknown there (or that server cannot say): ask the next
        }
      }
    }
    throw unknown_token_error("UnknownToken", endpoint + ": " + std::string(method) + ": no server knows token " + *token);
  }

  void remember(const std::string& token, std::size_t i) {
    std::lock_guard lock(mu);
    if (!tokens.emplace(token, i).second) return;
    order.push_back(token);
    if (order.size() > remembered_tokens) {
      tokens.erase(order.front());
      order.pop_front();
    }
  }

  // A server that lost a call (or refused us) gets no new ones for two heartbeat periods while others are up.
  void shun(std::size_t i) {
    std::lock_guard lock(mu);
    shunned_until[i] = clock::now() + 2 * opts.heartbeat;
  }

  std::mutex mu;  // guards what follows, up to `busy`
  std::condition_variable up_changed;
  std::vector<clock::time_point> shunned_until;
  std::size_t next = 0;
  std::unordered_map<std::string, std::size_t> tokens;
  std::deque<std::string> order;
  std::vector<std::atomic<std::size_t>> busy;  // blocking calls in flight, by server
  std::vector<std::unique_ptr<zmq_client>> servers;  // last: destroyed first
};

}  // namespace
}  // namespace detail

std::vector<std::string> split_endpoints(std::string_view list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t at = 0; (at = list.find(',', at)) != std::string_view::npos; ++at) {
    // A comma separates endpoints only before a transport's name ("tcp://", "ipc://"...): ipc paths may hold commas.
    const std::string_view rest = list.substr(at + 1);
    const std::size_t scheme = rest.find("://");
    if (scheme == std::string_view::npos || scheme == 0 ||
        rest.substr(0, scheme).find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789+") != std::string_view::npos)
      continue;
    out.emplace_back(list.substr(start, at - start));
    start = at + 1;
  }
  out.emplace_back(list.substr(start));
  return out;
}

std::unique_ptr<client::impl> make_spread_client(const std::vector<std::string>& endpoints, client_options opts) {
  if (endpoints.empty()) throw error("no endpoint to connect to");
  if (endpoints.size() > detail::max_endpoints)
    throw error(std::to_string(endpoints.size()) + " endpoints: at most " + std::to_string(detail::max_endpoints) +
                " may be given");
  std::string joined;
  for (const std::string& ep : endpoints) {
    if (ep.empty()) throw error("an empty endpoint in the list \"" + joined + "...\"");
    if (!joined.empty()) joined += ',';
    joined += ep;
  }
  if (endpoints.size() == 1) return make_zmq_client(endpoints.front(), opts);
  return std::make_unique<detail::spread_client>(joined, endpoints, opts);
}

}  // namespace rpc
