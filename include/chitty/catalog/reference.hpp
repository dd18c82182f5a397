// Secret references: op://VAULT/ITEM[/SECTION]/FIELD (SPEC §3), their
// canonical form, and the globs policy is written in.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chitty/base/result.hpp"

namespace chitty::catalog {

inline constexpr std::size_t kMaxReferenceBytes = 1024;
inline constexpr std::size_t kMaxPartBytes = 256;

struct Reference {
  std::string vault;
  std::string item;
  std::optional<std::string> section;
  std::string field;

  // As written: "op://ChittyOS Services/ChittyID Service Token/service_token".
  std::string display() const;
  // The cache, revocation and audit key: names fold ASCII case, so a title in
  // another spelling is the same secret. (With the Connect upstream the parts
  // become resolved IDs.)
  std::string canonical() const;
};

// Parses a reference. Errors name the problem precisely (empty part, "." or
// "..", control character, '?' or '#', too long, wrong number of parts).
Result<Reference> parse_reference(std::string_view text);

// A policy pattern over references: "op://Vault/**", "op://Vault/*/api_key".
// `*` matches within one part, `**` (a whole part) any number of parts.
// Matching folds ASCII case, like names.
class Glob {
 public:
  static Result<Glob> parse(std::string_view pattern);
  bool matches(const Reference& ref) const;
  const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
  std::string folded_;  // without "op://", case-folded
};

std::string fold_case(std::string_view s);

}  // namespace chitty::catalog
