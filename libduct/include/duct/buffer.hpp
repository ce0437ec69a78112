// duct::buffer: an owned, contiguous run of bytes, as recv_bytes() returns it.
//
// Unlike std::vector<std::byte> it does not zero its storage on allocation, so receiving a 1 MiB message costs one
// copy from the kernel and nothing more.
#pragma once

#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <span>
#include <string_view>
#include <utility>

namespace duct {

class buffer {
 public:
  buffer() = default;
  /// A buffer of `size` bytes whose contents are unspecified until written.
  /// Throws: std::bad_alloc.
  explicit buffer(std::size_t size) : data_(size ? allocate(size) : nullptr), size_(size) {}
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

  /// Takes ownership of the `size` bytes at `data`, which std::malloc or std::realloc allocated: the buffer
  /// releases them with std::free. It is how packed bytes become a buffer without a copy (pack_buffer::take()).
  static buffer adopt(std::byte* data, std::size_t size) noexcept {
    buffer b;
    b.data_.reset(data);
    b.size_ = data ? size : 0;
    return b;
  }

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
  struct free_bytes {
    void operator()(std::byte* p) const noexcept { std::free(p); }
  };
  static std::byte* allocate(std::size_t size) {
    void* p = std::malloc(size);
    if (!p) throw std::bad_alloc();
    return static_cast<std::byte*>(p);
  }
  std::unique_ptr<std::byte[], free_bytes> data_;
  std::size_t size_ = 0;
};

}  // namespace duct
