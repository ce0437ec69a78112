// rpc::server's built-in methods: zerorpc's introspection (_zerorpc_*) and deferred calls (_ductrpc_*). They run on
// whichever thread holds the server's mutex. See server.hpp.
#include <algorithm>

#include "reply.hpp"
#include "server_impl.hpp"

namespace rpc {

using detail::err_args;
using detail::pack;

void server::impl::pack_methods(msgpack::packer<duct::pack_buffer>& p) const {
  p.pack_map(static_cast<std::uint32_t>(methods.size()));
  for (const auto& [name, m] : methods) {
    p.pack(name);
    p.pack_map(2);
    p.pack(std::string_view("args"));
    p.pack_array(static_cast<std::uint32_t>(m.arg_names.size()));
    for (const auto& a : m.arg_names) {
      p.pack_map(1);
      p.pack(std::string_view("name"));
      p.pack(a);
    }
    p.pack(std::string_view("doc"));
    if (m.doc.empty()) p.pack_nil();
    else p.pack(m.doc);
  }
}

void server::impl::deferred_builtin(const std::string& identity, std::shared_ptr<event> ev) {
  const std::string& n = ev->name;
  const msgpack::object& a = ev->args();
  auto fail = [&](const std::string& name, const std::string& message) {
    finish(identity, ev->header.id, "ERR", err_args(name, message));
  };
  auto reply = [&](const auto& value) { finish(identity, ev->header.id, "OK", pack(std::make_tuple(value))); };
  const bool is_array = a.type == msgpack::type::ARRAY;
  const std::uint32_t argc = is_array ? a.via.array.size : 0;
  auto str_arg = [&](std::uint32_t i) -> std::optional<std::string> {
    if (i >= argc || a.via.array.ptr[i].type != msgpack::type::STR) return std::nullopt;
    return a.via.array.ptr[i].as<std::string>();
  };

  if (n == "_ductrpc_list") {  // a client's own jobs (by its CURVE key); keyless ones only if the server says so
    const std::string mine = key_of(identity);
    std::vector<std::map<std::string, std::string>> out;
    for (const detail::job* j : jobs.all())
      if (j->owner.empty() ? opts.list_jobs : j->owner == mine)
        out.push_back({{"token", j->token}, {"method", j->method}, {"state", detail::to_string(j->state)}});
    reply(out);
    return;
  }
  if (n == "_ductrpc_submit") {
    auto method = str_arg(0);
    if (!method || argc != 2 || a.via.array.ptr[1].type != msgpack::type::ARRAY)
      return fail("TypeError", "_ductrpc_submit(method, [args]) takes a method name and an array of arguments");
    auto m = methods.find(*method);
    if (m == methods.end()) return fail("NameError", *method);
    if (m->second.streams) return fail("TypeError", *method + " streams its reply, which a token cannot hold");
    const std::string client = client_of(identity);
    const auto& pc = opts.per_client;
    if (!jobs.room_for(client, opts.max_jobs, pc.jobs, pc.kept_bytes, opts.max_kept_bytes)) {
      std::string why = jobs.jobs_of(client) >= pc.jobs ? "this client keeps " + std::to_string(pc.jobs) + " deferred calls already"
                        : jobs.bytes_of(client) >= pc.kept_bytes
                            ? "this client's kept outcomes take " + std::to_string(jobs.bytes_of(client)) + " bytes (at most " +
                                  std::to_string(pc.kept_bytes) + "): fetch them, or let them expire"
                            : "the server keeps " + std::to_string(jobs.size()) + " deferred calls (" +
                                  std::to_string(jobs.bytes()) + " bytes of outcomes) already";
      return finish(identity, ev->header.id, "ERR", overloaded(*method, why));
    }
    detail::job& j = jobs.create(*method, key_of(identity), client);
    const std::string token = j.token;
    ++open;  // a running job is open work: a drain waits for it
    auto why = run_handler(client, m->second.fn, ev, a.via.array.ptr[1], j.stop.get_token(),
                           detail::outbound{{}, {}, "OK", {}, token}, nullptr, nullptr,
                           m->second.reads ? detail::empty_input(*method) : nullptr);
    if (why != detail::fair_pool::refusal::none) {
      jobs.erase(token);
      closed_one();
      return finish(identity, ev->header.id, "ERR", overloaded(*method, refused_because(why)));
    }
    reply(token);
    return;
  }
  auto token = str_arg(0);
  detail::job* j = token ? jobs.find(*token) : nullptr;
  if (j && !may_see(identity, *j)) j = nullptr;  // another key's job: as if there were none
  if (!token) return fail("TypeError", n + "(token, ...) takes a token string first");
  if (!j) return fail("UnknownToken", "no deferred call has token " + *token + " (or its outcome has expired)");
  if (n == "_ductrpc_poll") {
    duct::pack_buffer out;
    msgpack::packer<duct::pack_buffer> p(out);
    p.pack_array(1);
    bool finished = j->state != detail::job_state::running;
    p.pack_map(finished ? 2 : 1);
    p.pack(std::string_view("state"));
    p.pack(std::string_view(detail::to_string(j->state)));
    if (finished) {
      // OK args are [result]: the result follows the array's first byte. ERR args are [name, message, traceback].
      bool ok = j->outcome_name == "OK";
      p.pack(std::string_view(ok ? "result" : "error"));
      auto bytes = ok ? j->outcome.span().subspan(1) : j->outcome.span();
      out.write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
      collected_one(*j);
    }
    finish(identity, ev->header.id, "OK", out.take());
  } else if (n == "_ductrpc_wait") {
    double seconds = 0;
    if (argc != 2) return fail("TypeError", "_ductrpc_wait(token, seconds) takes a token and a time limit");
    try {
      seconds = a.via.array.ptr[1].as<double>();
    } catch (const msgpack::type_error&) {
      return fail("TypeError", "_ductrpc_wait: the time limit must be a number of seconds");
    }
    detail::job_waiter w{identity, ev->header.id, detail::clock::now()};
    if (j->state != detail::job_state::running) return answer_waiter(*j, w);
    seconds = std::clamp(seconds, 0.0, 86400.0);
    w.deadline += std::chrono::duration_cast<detail::clock::duration>(std::chrono::duration<double>(seconds));
    note_deadline(w.deadline);
    j->waiters.push_back(std::move(w));  // answered when the call finishes, or by tick() at the limit
  } else if (n == "_ductrpc_cancel") {
    bool was_running = j->state == detail::job_state::running;
    if (was_running) {
      j->stop.request_stop();
      job_finished(*j, "ERR", err_args("Cancelled", j->method + ": cancelled by a client (token " + j->token + ")"));
      j->state = detail::job_state::cancelled;
      if (!j->collected) --uncollected;  // nobody needs to fetch a cancellation
      j->collected = true;
    }
    reply(was_running);
  } else {
    fail("NameError", n);
  }
}

// A deferred call ended (or was cancelled): keep its outcome and answer everyone waiting for it.
void server::impl::job_finished(detail::job& j, std::string name, duct::buffer outcome) {
  const std::size_t size = outcome.size();
  if (!jobs.keep(j, std::move(name), std::move(outcome), opts.per_client.kept_bytes, opts.max_kept_bytes)) {
    const std::size_t mine = jobs.bytes_of(j.client);
    jobs.keep(j, "ERR",
              overloaded(j.method, "its outcome of " + std::to_string(size) + " bytes does not fit: this client's kept "
                                   "outcomes take " + std::to_string(mine) + " bytes (at most " +
                                   std::to_string(opts.per_client.kept_bytes) + "), all clients' " +
                                   std::to_string(jobs.bytes()) + " (at most " + std::to_string(opts.max_kept_bytes) + ")"),
              0, 0, true);
  }
  j.state = j.outcome_name == "OK" ? detail::job_state::done : detail::job_state::failed;
  ++uncollected;
  j.finished = detail::clock::now();
  note_deadline(j.finished + opts.keep_results);  // when the outcome expires
  for (const detail::job_waiter& w : j.waiters) answer_waiter(j, w);
  j.waiters.clear();
  closed_one();
}

void server::impl::answer_waiter(detail::job& j, const detail::job_waiter& w) {
  finish(w.identity, w.channel, j.outcome_name, j.outcome);
  collected_one(j);
}

bool server::impl::builtin(const std::string& identity, const event& ev) {
  const std::string& n = ev.name;
  if (!n.starts_with("_zerorpc_")) return false;
  auto method_arg = [&]() -> const detail::method_entry* {
    const msgpack::object& a = ev.args();
    if (a.type != msgpack::type::ARRAY || a.via.array.size != 1 || a.via.array.ptr[0].type != msgpack::type::STR)
      return nullptr;
    auto it = methods.find(a.via.array.ptr[0].as<std::string>());
    return it == methods.end() ? nullptr : &it->second;
  };
  duct::pack_buffer out;
  msgpack::packer<duct::pack_buffer> p(out);
  p.pack_array(1);
  if (n == "_zerorpc_ping") {
    p.pack(std::make_tuple(std::string("pong"), opts.name));
  } else if (n == "_zerorpc_name") {
    p.pack(opts.name);
  } else if (n == "_zerorpc_list") {
    std::vector<std::string> names;
    for (const auto& [name, m] : methods) names.push_back(name);
    p.pack(names);
  } else if (n == "_zerorpc_help" || n == "_zerorpc_args") {
    const detail::method_entry* m = method_arg();
    if (!m) {
      finish(identity, ev.header.id, "ERR", err_args("NameError", n + ": no such method"));
      return true;
    }
    if (n == "_zerorpc_help") {
      if (m->doc.empty()) p.pack_nil();
      else p.pack(m->doc);
    } else {
      p.pack_array(4);  // [args, varargs, keywords, defaults], as Python's argspec
      p.pack(m->arg_names);
      p.pack_nil();
      p.pack_nil();
      p.pack_nil();
    }
  } else if (n == "_zerorpc_inspect") {
    p.pack_map(2);
    p.pack(std::string_view("name"));
    p.pack(opts.name);
    p.pack(std::string_view("methods"));
    pack_methods(p);
  } else {
    finish(identity, ev.header.id, "ERR", err_args("NameError", n));
    return true;
  }
  // A ping tells our client that calls may be stopped (rpc-call pings first: a call it stops before its first
  // reply then stops on the server at once).
  finish(identity, ev.header.id, "OK", out.take(), n == "_zerorpc_ping" && detail::from_our_client(ev.header));
  return true;
}


}  // namespace rpc
