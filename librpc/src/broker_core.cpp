// rpc-broker's routing, sans-I/O. See broker_core.hpp and docs/broker.md.
#include "broker_core.hpp"

#include <algorithm>

#include <duct/codec.hpp>
#include <duct/msgpack.hpp>

#include "access.hpp"
#include "broker_wire.hpp"
#include "reply.hpp"

namespace rpc::detail {

namespace {

duct::buffer pack_one(auto&& write) {
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_array(1);
  write(p, out);
  return out.take();
}

bool ends_channel(std::string_view name) {
  return name == "OK" || name == "ERR" || name == "STREAM_DONE" || name == "DEFERRED";
}

const msgpack::object* arg(const event& ev, std::uint32_t i) {
  const msgpack::object& a = ev.args();
  if (a.type != msgpack::type::ARRAY || i >= a.via.array.size) return nullptr;
  return &a.via.array.ptr[i];
}

std::optional<std::string> str_arg(const event& ev, std::uint32_t i) {
  const msgpack::object* o = arg(ev, i);
  if (!o || o->type != msgpack::type::STR) return std::nullopt;
  return o->as<std::string>();
}

}  // namespace

std::size_t broker_core::key_hash::operator()(const key& k) const {
  return hash_bytes(k.client) * 0x9e3779b97f4a7c15u ^ message_id_hash()(k.channel);
}

broker_core::broker_core(broker_config c) : cfg_(std::move(c)) {}

std::string broker_core::owner_of(const std::string& client) {
  const std::string_view key = client_key(client);
  return key.empty() ? client : std::string(key);
}

std::size_t broker_core::busy(const std::string& w) const {
  auto it = workers_.find(w);
  return it == workers_.end() ? 0 : it->second.busy;
}

bool broker_core::serves(const std::string& method) const {
  return std::any_of(workers_.begin(), workers_.end(), [&](const auto& w) { return w.second.methods.count(method) != 0; });
}

// ---- from clients --------------------------------------------------------------------------------------------------

void broker_core::from_client(const std::string& client, duct::buffer body, clock::time_point now) {
  event ev;
  try {
    decode_event_into(body.span(), ev);
  } catch (const protocol_error&) {
    ++dropped_;
    return;
  }
  if (!ev.header.response_to) return request(client, ev, std::move(body), now);
  const key k{client, *ev.header.response_to};
  if (auto r = routes_.find(k); r != routes_.end()) {
    r->second.heard = now;
    out_.push_back({true, r->second.worker, client, std::move(body)});
    if (ev.name == "_ductrpc_stop") close_route(r);  // the worker ends the call without an answer
    return;
  }
  if (auto q = queued_.find(k); q != queued_.end()) {
    if (ev.name == "_zpc_hb") {
      q->second->heard = now;
    } else if (ev.name == "_ductrpc_stop") {
      unqueue(q->second);
      release_client(client);
    } else {
      ++dropped_;
    }
    return;
  }
  ++dropped_;  // a channel we do not know (ended, forgotten, or never opened)
}

broker_core::target broker_core::target_of(const event& ev) const {
  const std::string& n = ev.name;
  if (n == "_zerorpc_ping" || n == "_zerorpc_name" || n == "_zerorpc_list" || n == "_zerorpc_inspect" ||
      n == "_ductrpc_list")
    return {target::kind::local, n};
  if (n == "_ductrpc_submit" || n == "_ductrpc_chunked" || n == "_zerorpc_help" || n == "_zerorpc_args") {
    auto m = str_arg(ev, 0);
    if (!m) return {target::kind::local, n};  // answered with a TypeError
    return {target::kind::method, *m};
  }
  if (n == "_ductrpc_poll" || n == "_ductrpc_wait" || n == "_ductrpc_cancel") {
    auto t = str_arg(ev, 0);
    if (!t) return {target::kind::local, n};
    return {target::kind::token, *t};
  }
  return {target::kind::method, n};
}

void broker_core::request(const std::string& client, const event& ev, duct::buffer body, clock::time_point now) {
  const target t = target_of(ev);
  const message_id& channel = ev.header.id;
  if (t.how == target::kind::local) return answer_locally(client, ev);
  if (ev.header.oneway) {  // opens no channel: placed now if a worker has room, else dropped like an overload
    for (auto& [id, w] : workers_) {
      if (!w.draining && w.busy < w.jobs && w.methods.count(t.name)) {
        out_.push_back({true, id, client, std::move(body)});
        return;
      }
    }
    ++dropped_;
    return;
  }
  const key k{client, channel};
  if (routes_.count(k) || queued_.count(k)) {  // a request reusing an open channel's id: not ours to sort out
    ++dropped_;
    return;
  }
  const std::string owner = owner_of(client);
  auto open_it = open_of_.find(owner);
  const std::size_t open = open_it == open_of_.end() ? 0 : open_it->second;
  if (open >= cfg_.client_open)
    return fail(client, channel, "Overloaded",
                t.name + ": this client has " + std::to_string(open) + " calls open through the broker; try again later");
  if (routes_.size() + queue_.size() >= cfg_.max_open)
    return fail(client, channel, "Overloaded", t.name + ": the broker has " + std::to_string(cfg_.max_open) +
                                                   " calls open; try again later");
  if (t.how == target::kind::token) {
    const std::string_view prefix = token_prefix(t.name);
    auto w = prefix.empty() ? prefixes_.end() : prefixes_.find(std::string(prefix));
    if (w == prefixes_.end())
      return fail(client, channel, "UnknownToken",
                  "no deferred call has token " + t.name + " (no worker of this broker holds it)");
    routes_.emplace(k, route{w->second, now, false});
    ++open_of_[owner];
    out_.push_back({true, w->second, client, std::move(body)});
    return;
  }
  if (!workers_.empty() && !serves(t.name)) return fail(client, channel, "NameError", t.name);
  pending p{k, t.name, std::move(body), now};
  if (queue_.empty() && place(p, now)) {  // else it goes behind those waiting, and pump() places what it can
    ++open_of_[owner];
    return;
  }
  auto queued_it = queued_of_.find(owner);
  const std::size_t mine = queued_it == queued_of_.end() ? 0 : queued_it->second;
  if (mine >= cfg_.client_queued)
    return fail(client, channel, "Overloaded", t.name + ": this client has " + std::to_string(mine) +
                                                   " calls waiting for a worker already; try again later");
  if (queue_.size() >= cfg_.max_queued)
    return fail(client, channel, "Overloaded", t.name + ": " + std::to_string(queue_.size()) +
                                                   " calls wait for a worker already; try again later");
  ++open_of_[owner];
  ++queued_of_[owner];
  queue_.push_back(std::move(p));
  queued_.emplace(k, std::prev(queue_.end()));
  if (queue_.size() == 1) next_queue_beat_ = now + cfg_.heartbeat;
  else pump(now);  // a worker may have room for this method while others wait for theirs
}

bool broker_core::place(pending& p, clock::time_point now) {
  worker* best = nullptr;
  const std::string* best_id = nullptr;
  for (auto& [id, w] : workers_) {
    if (w.draining || w.busy >= w.jobs || !w.methods.count(p.method)) continue;
    // Least loaded first: the smallest share of its slots in use (compared without division).
    if (!best || std::uint64_t{w.busy} * best->jobs < std::uint64_t{best->busy} * w.jobs) {
      best = &w;
      best_id = &id;
    }
  }
  if (!best) return false;
  ++best->busy;
  routes_.emplace(p.k, route{*best_id, now, true});
  out_.push_back({true, *best_id, p.k.client, std::move(p.body)});
  return true;
}

void broker_core::pump(clock::time_point now) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    const bool unserved = !workers_.empty() && !serves(it->method);
    if (!unserved && !place(*it, now)) {
      ++it;
      continue;
    }
    const key k = it->k;
    const std::string method = it->method;
    it = unqueue(it);
    if (unserved) {
      release_client(k.client);
      fail(k.client, k.channel, "NameError", method);
    }
  }
}

void broker_core::answer_locally(const std::string& client, const event& ev) {
  const std::string& n = ev.name;
  const message_id& channel = ev.header.id;
  if (n == "_zerorpc_ping") {
    // Our workers understand _ductrpc_stop, so our client may stop calls through the broker.
    reply(client, channel, "OK", pack_one([&](auto& p, auto&) { p.pack(std::make_tuple(std::string("pong"), cfg_.name)); }),
          from_our_client(ev.header));
  } else if (n == "_zerorpc_name") {
    reply(client, channel, "OK", pack_one([&](auto& p, auto&) { p.pack(cfg_.name); }));
  } else if (n == "_zerorpc_list" || n == "_zerorpc_inspect") {
    std::map<std::string_view, const duct::buffer*> all;  // each method as the first worker that has it describes it
    for (const auto& [id, w] : workers_)
      for (const auto& [m, info] : w.methods) all.emplace(m, &info);
    reply(client, channel, "OK", pack_one([&](auto& p, auto& raw) {
            if (n == "_zerorpc_list") {
              p.pack_array(static_cast<std::uint32_t>(all.size()));
              for (const auto& [m, info] : all) p.pack(m);
              return;
            }
            p.pack_map(2);
            p.pack(std::string_view("name"));
            p.pack(cfg_.name);
            p.pack(std::string_view("methods"));
            p.pack_map(static_cast<std::uint32_t>(all.size()));
            for (const auto& [m, info] : all) {
              p.pack(m);
              raw.write(reinterpret_cast<const char*>(info->data()), info->size());
            }
          }));
  } else if (n == "_ductrpc_list") {
    fail(client, channel, "NotSupported",
         "_ductrpc_list: the broker's workers each keep their own jobs; reach a job through its token");
  } else {
    fail(client, channel, "TypeError", n + " takes a method name or a token string first");
  }
}

// ---- from workers --------------------------------------------------------------------------------------------------

void broker_core::from_worker(const std::string& worker_id, const std::string& client, duct::buffer body,
                              clock::time_point now) {
  auto w = workers_.find(worker_id);
  if (w == workers_.end()) {  // we restarted, or took it for dead: it must announce itself again
    out_.push_back({true, worker_id, {}, duct::buffer(std::string_view(cmd_reset))});
    ++dropped_;
    return;
  }
  w->second.heard = now;
  event ev;
  try {
    decode_event_into(body.span(), ev);
  } catch (const protocol_error&) {
    ++dropped_;
    return;
  }
  auto r = ev.header.response_to ? routes_.find(key{client, *ev.header.response_to}) : routes_.end();
  if (r == routes_.end() || r->second.worker != worker_id) {  // a channel that ended, or not this worker's
    ++dropped_;
    return;
  }
  r->second.heard = now;
  out_.push_back({false, client, {}, std::move(body)});
  if (ends_channel(ev.name)) {
    close_route(r);
    pump(now);
  }
}

void broker_core::command(const std::string& worker_id, std::string_view name, std::span<const std::byte> payload,
                          clock::time_point now) {
  auto w = workers_.find(worker_id);
  if (name == cmd_ready) {
    ready_info info;
    try {
      info = parse_ready(payload);
    } catch (const std::exception&) {
      ++dropped_;
      return;
    }
    if (w == workers_.end()) {
      if (workers_.size() >= cfg_.max_workers) {
        ++dropped_;
        return;
      }
      w = workers_.emplace(worker_id, worker{}).first;
    }
    worker& x = w->second;
    if (!x.prefix.empty()) prefixes_.erase(x.prefix);
    x.jobs = info.jobs;
    x.heartbeat = info.heartbeat;
    x.heard = now;
    x.draining = false;
    x.prefix = std::move(info.prefix);
    x.methods = std::move(info.methods);
    if (!x.prefix.empty()) prefixes_[x.prefix] = worker_id;
    pump(now);
    return;
  }
  if (w == workers_.end()) {
    if (name == cmd_heartbeat) out_.push_back({true, worker_id, {}, duct::buffer(std::string_view(cmd_reset))});
    else ++dropped_;
    return;
  }
  w->second.heard = now;
  if (name == cmd_heartbeat) return;
  if (name == cmd_drain) {
    w->second.draining = true;
    return;
  }
  if (name == cmd_bye) {
    drop_worker(worker_id, "it left");
    pump(now);
    return;
  }
  ++dropped_;
}

// ---- endings ---------------------------------------------------------------------------------------------------------

void broker_core::close_route(std::unordered_map<key, route, key_hash>::iterator it) {
  if (it->second.slot) {
    auto w = workers_.find(it->second.worker);
    if (w != workers_.end() && w->second.busy > 0) --w->second.busy;
  }
  const std::string client = it->first.client;
  routes_.erase(it);
  release_client(client);
}

std::list<broker_core::pending>::iterator broker_core::unqueue(std::list<pending>::iterator it) {
  auto q = queued_of_.find(owner_of(it->k.client));
  if (q != queued_of_.end() && --q->second == 0) queued_of_.erase(q);
  queued_.erase(it->k);
  return queue_.erase(it);
}

void broker_core::release_client(const std::string& client) {
  auto it = open_of_.find(owner_of(client));
  if (it != open_of_.end() && --it->second == 0) open_of_.erase(it);
}

void broker_core::drop_worker(const std::string& id, const std::string& why) {
  auto w = workers_.find(id);
  if (w == workers_.end()) return;
  if (!w->second.prefix.empty()) prefixes_.erase(w->second.prefix);
  workers_.erase(w);
  std::vector<key> lost;
  for (const auto& [k, r] : routes_)
    if (r.worker == id) lost.push_back(k);
  for (const key& k : lost) {
    routes_.erase(k);
    release_client(k.client);
    fail(k.client, k.channel, "LostRemote", "rpc-broker: the worker serving this call was lost (" + why + ")");
  }
}

void broker_core::tick(clock::time_point now) {
  std::vector<std::string> dead;
  for (const auto& [id, w] : workers_)
    if (now - w.heard > 2 * w.heartbeat) dead.push_back(id);
  for (const std::string& id : dead) drop_worker(id, "silent for two of its heartbeat periods");
  if (!dead.empty()) pump(now);

  if (!queue_.empty() && now >= next_queue_beat_) {
    for (auto it = queue_.begin(); it != queue_.end();) {
      if (now - it->heard > cfg_.forget_after) {  // its client went away while it waited
        const std::string client = it->k.client;
        it = unqueue(it);
        release_client(client);
        ++dropped_;
        continue;
      }
      reply(it->k.client, it->k.channel, "_zpc_hb", pack_one([](auto& p, auto&) { p.pack(0); }));
      ++it;
    }
    next_queue_beat_ = now + cfg_.heartbeat;
  }

  if (now >= next_sweep_) {
    for (auto it = routes_.begin(); it != routes_.end();) {
      auto next = std::next(it);
      if (now - it->second.heard > cfg_.forget_after) {
        ++dropped_;
        close_route(it);
      }
      it = next;
    }
    next_sweep_ = now + std::min<clock::duration>(cfg_.forget_after / 4, std::chrono::seconds(1));
    pump(now);
  }
}

clock::time_point broker_core::next_due() const {
  clock::time_point t = next_sweep_;
  if (!queue_.empty()) t = std::min(t, next_queue_beat_);
  for (const auto& [id, w] : workers_) t = std::min(t, w.heard + 2 * w.heartbeat + std::chrono::milliseconds(1));
  return t;
}

// ---- answers ---------------------------------------------------------------------------------------------------------

void broker_core::reply(const std::string& client, const message_id& channel, std::string_view name,
                        duct::buffer args, bool stop) {
  event_header h{ids_.next(), channel};
  h.accepts_stop = stop;
  out_.push_back({false, client, {}, encode_event_packed(h, name, args.span())});
}

void broker_core::fail(const std::string& client, const message_id& channel, const std::string& name,
                       const std::string& message) {
  duct::pack_buffer out;
  msgpack::pack(out, std::make_tuple(name, message, msgpack::type::nil_t()));
  reply(client, channel, "ERR", out.take());
}

}  // namespace rpc::detail
