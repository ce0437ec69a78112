// rpc-serve's log. See serve_log.hpp.
#include "serve_log.hpp"

#include <cstdio>
#include <ctime>

#include <duct/codec.hpp>

#include "json_form.hpp"

namespace tools {
namespace {

// A JSON string's form of `text`, quotes included.
std::string quoted(const std::string& text) {
  msgpack::zone zone;
  return to_json(msgpack::object(text, zone));
}

}  // namespace

std::string serve_log::timestamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm utc{};
  ::gmtime_r(&seconds, &utc);
  char text[80];  // room for any int the fields could hold, so that the compiler can see nothing is cut
  std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
  return text;
}

void serve_log::call(const std::string& peer, const std::string& method, const msgpack::object& args,
                     std::chrono::steady_clock::duration took, const std::string& outcome, const std::string& error) {
  if (opts_.quiet) return;
  const double ms = std::chrono::duration<double, std::milli>(took).count();
  std::string shown = to_json(args);
  char took_text[32];
  std::snprintf(took_text, sizeof took_text, "%.1f", ms);
  if (opts_.json) {
    std::string line = "{\"time\": " + quoted(timestamp()) + ", \"event\": \"call\", \"peer\": " + quoted(peer) +
                       ", \"method\": " + quoted(method) + ", \"args\": " + shown + ", \"outcome\": " +
                       quoted(outcome) + (error.empty() ? "" : ", \"error\": " + quoted(error)) +
                       ", \"ms\": " + took_text + "}";
    write(line);
    return;
  }
  if (!opts_.verbose && shown.size() > 80) shown = shown.substr(0, 77) + "...";
  write(timestamp() + " " + opts_.program + ": " + (peer.empty() ? "-" : peer) + " " + method + " " + shown + " -> " + outcome +
        (error.empty() ? "" : ": " + error) + " (" + took_text + " ms)");
}

void serve_log::event(const std::string& what, const std::vector<std::pair<std::string, std::string>>& facts,
                      const std::string& message) {
  if (!opts_.json) {
    write(timestamp() + " " + opts_.program + ": " + message);
    return;
  }
  std::string line = "{\"time\": " + quoted(timestamp()) + ", \"event\": " + quoted(what);
  for (const auto& [name, value] : facts) line += ", " + quoted(name) + ": " + quoted(value);
  write(line + "}");
}

void serve_log::write(const std::string& line) {
  std::lock_guard lock(mu_);
  std::fprintf(stderr, "%s\n", line.c_str());
  std::fflush(stderr);
}

}  // namespace tools
