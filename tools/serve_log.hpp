// rpc-serve's (and rpc-broker's) log on stderr: one line per call and per event of the server's life (listening, a signal, the end),
// each starting with an ISO 8601 UTC timestamp; or, with --log-json, one JSON object per line with the same facts.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <duct/msgpack.hpp>

namespace tools {

class serve_log {
 public:
  struct options {
    bool quiet = false;    ///< no line per call (the server's own events are still logged)
    bool verbose = false;  ///< a call's arguments in full, not cut at 80 characters
    bool json = false;     ///< JSON lines
    std::string program = "rpc-serve";  ///< what text lines name after the timestamp
  };
  explicit serve_log(options opts) : opts_(opts) {}

  /// A call ended: who (`peer`), what, how long it took, and its outcome ("OK", or the error's name and message).
  void call(const std::string& peer, const std::string& method, const msgpack::object& args,
            std::chrono::steady_clock::duration took, const std::string& outcome, const std::string& error = {});
  /// An event of the server's life: `what` ("listening", "signal", ...) and its facts as name, text pairs. The
  /// text form is the program's name, ": ", then `message`.
  void event(const std::string& what, const std::vector<std::pair<std::string, std::string>>& facts,
             const std::string& message);

  /// Now, as ISO 8601 in UTC with milliseconds: "2026-12-04T15:40:01.123Z".
  static std::string timestamp();

 private:
  void write(const std::string& line);
  options opts_;
  std::mutex mu_;
};

}  // namespace tools
