#include "chitty/client/masker.hpp"

#include <algorithm>
#include <cstring>

namespace chitty::client {

Result<Masker> Masker::create(secure::Arena& arena, std::vector<std::span<const char>> values) {
  Masker m;
  for (auto v : values) {
    if (v.empty()) continue;
    if (v.size() > kMaxValue) {
      return fail("a value of " + std::to_string(v.size()) + " bytes is too large to mask (at most " +
                  std::to_string(kMaxValue) + "); use --no-masking");
    }
    m.longest_ = std::max(m.longest_, v.size());
    m.values_.push_back(v);
  }
  m.work_ = secure::SecureBuffer::allocate(arena, secure::Arena::kMaxBlock);
  if (!m.work_) return fail("no locked memory to mask the output in");
  return m;
}

void Masker::feed(std::span<const char> data, const Emit& emit) {
  if (values_.empty()) {
    if (!data.empty()) emit(data);
    return;
  }
  while (!data.empty()) {
    std::size_t room = work_.capacity() - work_.size();
    std::size_t n = std::min(room, data.size());
    // Room is never zero: scan() keeps fewer than longest_ bytes.
    (void)work_.append(std::string_view(data.data(), n));
    data = data.subspan(n);
    scan(emit, false);
  }
}

void Masker::finish(const Emit& emit) {
  if (values_.empty()) return;
  scan(emit, true);
}

void Masker::scan(const Emit& emit, bool final) {
  const char* w = work_.data();
  const std::size_t n = work_.size();
  std::size_t run = 0;  // start of the bytes decided to be plain text, not yet emitted
  std::size_t i = 0;
  while (i < n) {
    std::size_t whole = 0;
    bool partial = false;
    for (auto v : values_) {
      if (v[0] != w[i]) continue;
      std::size_t m = std::min(v.size(), n - i);
      if (std::memcmp(w + i, v.data(), m) != 0) continue;
      if (m == v.size()) {
        whole = std::max(whole, m);
      } else if (!final) {
        partial = true;  // could still become (a longer) value with the next read
      }
    }
    if (partial) break;
    if (whole > 0) {
      if (i > run) emit({w + run, i - run});
      emit({kConcealed.data(), kConcealed.size()});
      i += whole;
      run = i;
      continue;
    }
    ++i;
  }
  if (i > run) emit({w + run, i - run});
  // Keep [i, n): it could still be the start of a value.
  std::size_t keep = n - i;
  if (keep > 0) std::memmove(work_.data(), w + i, keep);
  work_.truncate(keep);
}

}  // namespace chitty::client
