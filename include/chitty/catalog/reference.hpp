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

// A reference is carried as its parts, never as text that is parsed again:
// an item titled "Prod/DB" is one part, not an item "Prod" with a section
// "DB". The key forms below write '/' and '%' inside a part as %2f and %25,
// so no two different lists of parts share a key; display() escapes '/'.
struct Reference {
  std::string vault;
  std::string item;
  std::optional<std::string> section;
  std::string field;

  // As written: "op://ChittyOS Services/ChittyID Service Token/service_token".
  std::string display() const;
  // The key of a reference as a client wrote it (docs/policy.md, "One
  // secret, one key"): every part folds ASCII case. Connect matches vault and
  // item names, and section and field IDs and labels, without case, and its
  // vault and item IDs are lower-case, so spellings that differ only in case
  // name one secret. Already in match_form().
  std::string canonical() const;
  // The parts verbatim: the key of a resolved reference, whose parts are
  // Connect IDs as Connect spells them ("op://<vault id>/<item id>/Section_x/notesPlain").
  // What the cache keys on and what audit events show.
  std::string id_key() const;

  bool operator==(const Reference&) const = default;
};

// The form in which two keys (canonical() or id_key() texts) are compared:
// ASCII case folded. The one normalisation the cache, resolutions, policy and
// revocations share: two keys with one match form are one secret.
std::string match_form(std::string_view key);

// Parses a reference. Errors name the problem precisely (empty part, "." or
// "..", control character, '?' or '#', too long, wrong number of parts).
[[nodiscard]] Result<Reference> parse_reference(std::string_view text);

// The reference a key form (canonical() or id_key()) names: the inverse of
// id_key(), and of canonical() up to ASCII case (which every source ignores
// in names). For what keeps keys rather than references (prediction).
[[nodiscard]] Result<Reference> reference_from_key(std::string_view key);

// A policy pattern over references: "op://Vault/**", "op://Vault/*/api_key".
// `*` matches within one part, `**` (a whole part) any number of parts.
// Matching folds ASCII case, like names.
class Glob {
 public:
  [[nodiscard]] static Result<Glob> parse(std::string_view pattern);
  bool matches(const Reference& ref) const;
  const std::string& text() const noexcept { return text_; }

 private:
  std::string text_;
  std::string folded_;  // without "op://", case-folded
};

std::string fold_case(std::string_view s);

}  // namespace chitty::catalog
