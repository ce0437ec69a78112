#include "support.hpp"

#include <openssl/sha.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <new>
#include <stdexcept>
#include <thread>
#include <chrono>

namespace test {

std::string hex(std::span<const std::byte> bytes) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (std::byte b : bytes) {
    out += digits[std::to_integer<int>(b) >> 4];
    out += digits[std::to_integer<int>(b) & 15];
  }
  return out;
}

duct::buffer unhex(std::string_view text) {
  if (text.size() % 2) throw std::invalid_argument("odd hex length");
  duct::buffer out(text.size() / 2);
  for (std::size_t i = 0; i < out.size(); ++i)
    out.data()[i] = std::byte(std::stoi(std::string(text.substr(2 * i, 2)), nullptr, 16));
  return out;
}

std::string sha256_hex(std::string_view data) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest);
  return hex(std::as_bytes(std::span(digest)));
}

std::vector<nlohmann::json> load_vectors(std::string_view name) {
  std::ifstream in(std::string(DUCT_VECTORS_DIR) + "/" + std::string(name));
  if (!in) throw std::runtime_error("cannot open vector file " + std::string(name));
  std::vector<nlohmann::json> lines;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

std::string peer_program() { return DUCT_TEST_PEER; }
std::string peer_script(std::string_view name) { return std::string(DUCT_PEERS_DIR) + "/" + std::string(name); }

std::string python3() {
  std::string p = DUCT_PYTHON3;
  return !p.empty() && ::access(p.c_str(), X_OK) == 0 ? p : std::string();
}

namespace {
std::atomic<bool> any_skipped{false};
}

void skip(const std::string& why) {
  const char* ci = std::getenv("CI");
  if (ci && std::string(ci) == "true") throw std::runtime_error("a peer is required in CI: " + why);
  std::cerr << "SKIPPED: " << why << "\n";
  any_skipped = true;
}

bool skipped_any() noexcept { return any_skipped; }

temp_dir::temp_dir() {
  std::string pattern = std::filesystem::temp_directory_path().string() + "/duct-test-XXXXXX";
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

temp_dir::~temp_dir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void wait_until_sleeping(const std::atomic<int>& tid) {
  auto limit = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < limit) {
    int t = tid.load();
    if (t != 0) {
      std::ifstream stat("/proc/self/task/" + std::to_string(t) + "/stat");
      std::string line;
      std::getline(stat, line);
      auto paren = line.rfind(')');
      if (paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'S') return;
    }
    std::this_thread::yield();
  }
  throw std::runtime_error("thread did not block within 10 s");
}

namespace {
std::atomic<std::size_t> largest{0};
}

std::size_t largest_allocation() { return largest.load(); }
void reset_largest_allocation() { largest.store(0); }

void note_allocation(std::size_t n) {
  std::size_t seen = largest.load(std::memory_order_relaxed);
  while (n > seen && !largest.compare_exchange_weak(seen, n, std::memory_order_relaxed)) {
  }
}

}  // namespace test

