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
  // The longest whole value that starts at i (0: none).
  auto whole_at = [&](std::size_t i) {
    std::size_t best = 0;
    for (auto v : values_) {
      if (v[0] == w[i] && v.size() <= n - i && v.size() > best && std::memcmp(w + i, v.data(), v.size()) == 0) {
        best = v.size();
      }
    }
    return best;
  };
  // Whether a value could still start at i, with bytes yet to come.
  auto could_start_at = [&](std::size_t i) {
    for (auto v : values_) {
      if (v.size() > n - i && v[0] == w[i] && std::memcmp(w + i, v.data(), n - i) == 0) return true;
    }
    return false;
  };
  // Starts before `limit` are decided: every value that could start there
  // is whole in the buffer. From the first position where a value could
  // still start, everything is held back.
  std::size_t limit = n;
  if (!final) {
    for (std::size_t i = n > longest_ - 1 ? n - (longest_ - 1) : 0; i < n; ++i) {
      if (could_start_at(i)) {
        limit = i;
        break;
      }
    }
  }
  std::size_t done = covered_;  // bytes emitted or concealed
  std::size_t cover = covered_;  // the end of the current concealment
  for (std::size_t i = 0; i < limit; ++i) {
    std::size_t len = whole_at(i);
    if (len == 0) continue;
    if (i < cover) {  // overlaps the current concealment: extends it
      cover = std::max(cover, i + len);
      done = std::max(done, cover);
      continue;
    }
    if (i > done) emit({w + done, i - done});
    emit({kConcealed.data(), kConcealed.size()});
    cover = i + len;
    done = cover;
  }
  if (done < limit) {
    emit({w + done, limit - done});
    done = limit;
  }
  // Keep [limit, n): a value may still start there. What of it a
  // concealment already covers is remembered, so that an occurrence that
  // starts inside it extends it rather than showing its end.
  std::size_t keep = n - limit;
  covered_ = done - limit;
  if (keep > 0 && limit > 0) std::memmove(work_.data(), w + limit, keep);
  work_.truncate(keep);
}

}  // namespace chitty::client
