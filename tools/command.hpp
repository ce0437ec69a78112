// Running a command for rpc-serve: argv without a shell, its stdin fed from a chunked request, its stdout collected
// (or streamed line by line), the tail of its stderr kept for the error, a time limit and cancellation honoured.
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <stop_token>
#include <string>
#include <vector>

#include <rpc/stream.hpp>

namespace tools {

struct command_result {
  int status = 0;           ///< the exit code, or minus the signal that ended it
  std::string out;          ///< stdout, unless it was streamed
  std::string err_tail;     ///< the last few KiB of stderr
  bool timed_out = false;   ///< killed at its time limit
  bool cancelled = false;   ///< killed because the call was cancelled
};

struct command_options {
  std::optional<std::chrono::milliseconds> limit;  ///< kill the command after this long
  std::size_t max_output = std::size_t{64} << 20;  ///< more stdout than this (collected) is an error
  rpc::source* input = nullptr;                    ///< items to write to stdin, then close it; none: stdin is empty
  std::function<void(std::string line)> on_line;   ///< if set, stdout goes here line by line instead of `out`
  std::function<void(std::string bytes)> on_bytes; ///< if set, stdout goes here as each read returns it
  std::stop_token stop;                            ///< stopped: the command is killed
};

/// Runs `argv` (searched in PATH) and waits for it.
/// Throws: std::runtime_error if it cannot be started (naming the program), or its stdout outgrows max_output.
command_result run_command(const std::vector<std::string>& argv, const command_options& opts);

}  // namespace tools
