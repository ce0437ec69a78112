// CURVE keys and czmq certificates. See rpc/curve.hpp.
#include <rpc/curve.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>

#include <zmq.h>

#include <rpc/error.hpp>

namespace rpc {
namespace {

constexpr std::size_t z85_key_size = 40;

// Writes `text` to a new file `path` with `mode`; never replaces an existing file.
void write_new_file(const std::string& path, const std::string& text, mode_t mode) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    const int err = errno;
    throw error(path + ": " + (err == EEXIST ? std::string("exists already; a key is never overwritten")
                                             : std::string(std::strerror(err))));
  }
  std::size_t done = 0;
  while (done < text.size()) {
    const ssize_t n = ::write(fd, text.data() + done, text.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      throw error(path + ": " + std::strerror(err));
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fchmod(fd, mode) != 0 || ::close(fd) != 0) throw error(path + ": " + std::strerror(errno));
}

std::string header(const char* kind, const char* advice) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  ::gmtime_r(&now, &utc);
  char when[32];
  std::strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &utc);
  return std::string("#   ****  Generated on ") + when + " by ductrpc  ****\n#   ZeroMQ CURVE " + kind +
         " Certificate\n" + advice + "\nmetadata\ncurve\n";
}

}  // namespace

bool is_curve_key(std::string_view key) noexcept {
  if (key.size() != z85_key_size) return false;
  static constexpr std::string_view alphabet =
      "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
  for (char c : key)
    if (alphabet.find(c) == std::string_view::npos) return false;
  return true;
}

curve_keypair make_curve_keypair() {
  std::array<char, z85_key_size + 1> pub{}, sec{};
  if (zmq_curve_keypair(pub.data(), sec.data()) != 0)
    throw error(std::string("cannot make a CURVE key pair: ") + zmq_strerror(zmq_errno()));
  return {pub.data(), sec.data()};
}

std::string curve_public_key(std::string_view secret_key) {
  if (!is_curve_key(secret_key)) throw error("a CURVE secret key is 40 characters of Z85");
  const std::string secret(secret_key);
  std::array<char, z85_key_size + 1> pub{};
  if (zmq_curve_public(pub.data(), secret.c_str()) != 0)
    throw error(std::string("cannot derive the CURVE public key: ") + zmq_strerror(zmq_errno()));
  return pub.data();
}

void save_curve_certificate(const std::string& path, const curve_keypair& keys) {
  if (!is_curve_key(keys.public_key) || !is_curve_key(keys.secret_key))
    throw error(path + ": a certificate needs a Z85 public and secret key of 40 characters each");
  const std::string secret_path = path + "_secret";
  // The secret first: if it cannot be written, no public half is left behind without it.
  write_new_file(secret_path,
                 header("**Secret**", "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n") +
                     "    public-key = \"" + keys.public_key + "\"\n    secret-key = \"" + keys.secret_key + "\"\n",
                 0600);
  try {
    write_new_file(path,
                   header("Public",
                          "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                          "#   of this file after exchange. Store public certificates in your home\n"
                          "#   directory, in the .curve subdirectory.\n") +
                       "    public-key = \"" + keys.public_key + "\"\n",
                   0644);
  } catch (...) {
    ::unlink(secret_path.c_str());
    throw;
  }
}

curve_keypair load_curve_certificate(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw error(path + ": " + std::strerror(errno));
  curve_keypair keys;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (number > 1000 || line.size() > 1000) throw error(path + ": not a CURVE certificate (too long)");
    const std::size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string name = line.substr(0, eq), value = line.substr(eq + 1);
    auto trim = [](std::string& s) {
      s.erase(0, s.find_first_not_of(" \t"));
      s.erase(s.find_last_not_of(" \t\r") + 1);
      if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front()) s = s.substr(1, s.size() - 2);
    };
    trim(name);
    trim(value);
    if (name != "public-key" && name != "secret-key") continue;
    if (!is_curve_key(value))
      throw error(path + ":" + std::to_string(number) + ": " + name + " is not 40 characters of Z85");
    (name == "public-key" ? keys.public_key : keys.secret_key) = value;
  }
  if (in.bad()) throw error(path + ": cannot read it");
  if (keys.public_key.empty()) throw error(path + ": not a CURVE certificate (no public-key)");
  if (!keys.secret_key.empty() && curve_public_key(keys.secret_key) != keys.public_key)
    throw error(path + ": its public-key does not belong to its secret-key");
  return keys;
}

std::vector<std::string> load_curve_public_keys(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return {load_curve_certificate(path).public_key};
  std::vector<std::string> keys;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.ends_with("_secret") || name.starts_with(".")) continue;
    keys.push_back(load_curve_certificate(entry.path().string()).public_key);
  }
  if (ec) throw error(path + ": " + ec.message());
  return keys;
}

}  // namespace rpc
