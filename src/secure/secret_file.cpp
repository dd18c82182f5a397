#include "chitty/secure/secret_file.hpp"

namespace chitty::secure {
namespace {

// One block of the size the file claims (+1), allocated on the first ask;
// it never grows: a file that outgrows it changed while it was read.
class SecureSink final : public ReadSink {
 public:
  SecureSink(Arena& arena, Lifetime lifetime) : arena_(arena), lifetime_(lifetime) {}

  std::span<char> room(std::size_t size) override {
    if (!buffer_) {
      buffer_ = SecureBuffer::allocate(arena_, size, lifetime_);
      if (!buffer_) return {};
      region_ = size;
    }
    return {buffer_.data(), region_};
  }

  SecureBuffer take(std::size_t size) && {
    if (!buffer_.resize(size)) return {};  // (what was read: never more than the room)
    return std::move(buffer_);
  }

 private:
  Arena& arena_;
  Lifetime lifetime_;
  SecureBuffer buffer_;
  std::size_t region_ = 0;
};

}  // namespace

[[nodiscard]] tl::expected<SecureBuffer, FileFailure> read_secret_file(Arena& arena, const std::string& path,
                                                         const FileRules& rules, Lifetime lifetime) {
  SecureSink sink(arena, lifetime);
  auto got = read_file(path, rules, sink);
  if (!got) return tl::unexpected(got.error());
  return std::move(sink).take(*got);
}

std::string secret_file_message(const FileFailure& failure, std::string_view what) {
  switch (failure.kind) {
    case FileFailure::Kind::not_private: return failure.message(what) + " (or give it with LoadCredential=)";
    case FileFailure::Kind::no_room: return "no locked memory to read " + std::string(what);
    default: return failure.message(what);
  }
}

}  // namespace chitty::secure
