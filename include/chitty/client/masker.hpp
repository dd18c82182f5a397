// Masking a command's output (chittyctl run, docs/chittyctl.md): every
// byte that belongs to an occurrence of a secret value in a byte stream is
// concealed, also when the value arrives split across reads. Occurrences
// that overlap (a value whose start is the end of another, one inside
// another) are concealed together, as one "<concealed by chitty>"; each
// separate occurrence gets its own. Bytes that could still be the start of
// a value are held back until the next read (or the end of the stream)
// decides; no part of a value is ever let through.
//
// Thread: one.
#pragma once

#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "chitty/base/result.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::client {

inline constexpr std::string_view kConcealed = "<concealed by chitty>";

class Masker {
 public:
  // Where masked output goes (it holds no value, only the text around them).
  using Emit = std::function<void(std::span<const char>)>;
  // The largest value that can be masked (its bytes must fit the held-back
  // window beside a read).
  static constexpr std::size_t kMaxValue = secure::Arena::kMaxBlock / 2;

  // `values` must outlive the masker; empty ones are ignored. Fails when a
  // value is larger than kMaxValue or there is no locked memory.
  [[nodiscard]] static Result<Masker> create(secure::Arena& arena, std::vector<std::span<const char>> values);

  // Masks `data` (of any size) after what was held back, emitting what is
  // decided.
  void feed(std::span<const char> data, const Emit& emit);
  // The end of the stream: the bytes still held back are emitted (masked
  // where they are whole values).
  void finish(const Emit& emit);
  // Bytes held back now (tests).
  std::size_t held() const noexcept { return work_.size(); }

 private:
  Masker() = default;
  // Scans work_, emits what is decided, keeps the rest.
  void scan(const Emit& emit, bool final);
  std::vector<std::span<const char>> values_;
  std::size_t longest_ = 0;
  secure::SecureBuffer work_;  // held-back bytes + the read being scanned
  // The first `covered_` bytes of work_ belong to a concealment already
  // emitted (an occurrence that started in bytes already let go and runs
  // into the held-back ones).
  std::size_t covered_ = 0;
};

}  // namespace chitty::client
