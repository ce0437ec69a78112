// What the tools' command lines share: GNU-style usage errors and a validator for durations.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

namespace tools {

/// Usage errors as GNU tools print them: "PROG: what is wrong" and a pointer to --help, on stderr.
inline void gnu_usage_errors(CLI::App& app, const std::string& prog) {
  app.failure_message([prog](const CLI::App*, const CLI::Error& e) {
    return prog + ": " + e.what() + "\nTry '" + prog + " --help' for more information.\n";
  });
}

/// The spellings of `app`'s options that take a value ("--timeout", "-t"), so that a tool can find where its own
/// arguments end before CLI11 reads them: which options take a value is the parser's own knowledge, not a list to
/// keep in step with it.
inline std::vector<std::string> options_with_value(CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* o : app.get_options([](const CLI::Option* o) { return o->nonpositional(); })) {
    if (o->get_items_expected_max() == 0) continue;  // a flag
    for (const std::string& n : o->get_lnames()) names.push_back("--" + n);
    for (const std::string& n : o->get_snames()) names.push_back("-" + n);
  }
  return names;
}

/// What is wrong with `text` as a number of seconds: more than 0 (or at least 0 with `zero_ok`), at most a year (so
/// it converts to milliseconds without overflow), not NaN. Returns: the complaint, or nothing if it is fine.
inline std::string check_seconds(const std::string& text, bool zero_ok = false) {
  double v = 0;
  try {
    std::size_t used = 0;
    v = std::stod(text, &used);
    if (used != text.size()) return "'" + text + "' is not a number of seconds";
  } catch (const std::exception&) {
    return "'" + text + "' is not a number of seconds";
  }
  if (zero_ok ? !(v >= 0) : !(v > 0)) return std::string(zero_ok ? "must be >= 0" : "must be > 0") + ", got " + text;
  if (!(v <= 365.0 * 24 * 3600)) return "must be at most a year (31536000 seconds), got " + text;
  return {};
}

/// check_seconds() as a CLI11 validator.
inline CLI::Validator seconds(bool zero_ok = false) {
  return CLI::Validator([zero_ok](std::string& text) { return check_seconds(text, zero_ok); },
                        zero_ok ? "SECONDS >= 0" : "SECONDS > 0");
}

}  // namespace tools
