// A secret file read straight into locked memory (the chain key, the
// upstream token, systemd credentials): base's read_file() with a sink in
// the arena, so the bytes never pass through any other buffer, and are wiped
// with the SecureBuffer on every way out.
//
// Thread: loop thread only (the arena's).
#pragma once

#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "chitty/base/file.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::secure {

// The file's bytes, all of them (size() is what was read). Fails as
// read_file() does; `no_room` when the arena has no block of the file's size
// + 1 right now. Give `rules.max_bytes` below Arena::kMaxBlock.
[[nodiscard]] tl::expected<SecureBuffer, FileFailure> read_secret_file(Arena& arena, const std::string& path,
                                                         const FileRules& rules,
                                                         Lifetime lifetime = Lifetime::transient);

// FileFailure::message() for a secret file, with the way to give it
// privately when others could read it ("…; chmod 0600 it (or give it with
// LoadCredential=)") and "no locked memory to read <what>" for `no_room`.
std::string secret_file_message(const FileFailure& failure, std::string_view what);

}  // namespace chitty::secure
