// duct::buffer: an owned, contiguous run of bytes, as recv_bytes() returns it.
//
// Unlike std::vector<std::byte> it does not zero its storage on allocation, so receiving a 1 MiB message costs one
// copy from the kernel and nothing more.
#pragma once

#include <cstddef>
#include <cstring>
#include <memory>
#include <span>
#include <string_view>
#include <utility>

namespace duct {

class buffer {
 public:
  buffer() = default;
  /// A buffer of `size` bytes whose contents are unspecified until written.
  explicit buffer(std::size_t size) : data_(size ? new std::byte[size] : nullptr), size_(size) {}
  /// A copy of `bytes`.
  explicit buffer(std::span<const std::byte> bytes) : buffer(bytes.size()) {
    if (size_ != 0) std::memcpy(data_.get(), bytes.data(), size_);
  }
  /// A copy of the characters of `text`.
  explicit buffer(std::string_view text) : buffer(std::as_bytes(std::span(text.data(), text.size()))) {}

  buffer(const buffer& other) : buffer(other.span()) {}
  buffer& operator=(const buffer& other) {
    if (this != &other) *this = buffer(other);
    return *this;
  }
  buffer(buffer&& other) noexcept : data_(std::move(other.data_)), size_(std::exchange(other.size_, 0)) {}
  buffer& operator=(buffer&& other) noexcept {
    data_ = std::move(other.data_);
    size_ = std::exchange(other.size_, 0);
    return *this;
  }
  ~buffer() = default;

  [[nodiscard]] std::byte* data() noexcept { return data_.get(); }
  [[nodiscard]] const std::byte* data() const noexcept { return data_.get(); }
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  [[nodiscard]] std::byte* begin() noexcept { return data(); }
  [[nodiscard]] std::byte* end() noexcept { return data() + size_; }
  [[nodiscard]] const std::byte* begin() const noexcept { return data(); }
  [[nodiscard]] const std::byte* end() const noexcept { return data() + size_; }

  [[nodiscard]] std::span<std::byte> span() noexcept { return {data(), size_}; }
  [[nodiscard]] std::span<const std::byte> span() const noexcept { return {data(), size_}; }
  /// The bytes seen as characters (no copy, no validation).
  [[nodiscard]] std::string_view view() const noexcept {
    return {reinterpret_cast<const char*>(data()), size_};
  }
  /// Keeps the first `size` bytes (size must not exceed size()).
  void truncate(std::size_t size) noexcept { size_ = size < size_ ? size : size_; }

  friend bool operator==(const buffer& a, const buffer& b) noexcept { return a.view() == b.view(); }

 private:
  std::unique_ptr<std::byte[]> data_;
  std::size_t size_ = 0;
};

}  // namespace duct
