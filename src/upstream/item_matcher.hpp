// Finding what a reference names inside Connect's answers (docs/upstream.md,
// "Resolving a reference"): pure functions on json::InPlace nodes — no I/O,
// no provider state. The answer stays where it was parsed (locked memory); a
// field's value is only ever pointed at, never copied. IDs, labels and titles
// (not secrets) are copied into the results and messages.
//
// The rules, all matching IDs and labels case-insensitively:
//   - a section part matches a section by its ID or its label;
//   - with a section, a field matches by ID or label among that section's
//     fields; without one, among the fields outside every section only (a
//     three-part reference never reaches into a section, docs/policy.md);
//   - more than one match is an error listing the candidates' IDs.
//
// Thread: any.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/catalog/reference.hpp"
#include "chitty/json/in_place.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::upstream {

// The field a reference names, found in a full item.
struct FieldMatch {
  json::Node field;        // the field object, in the item's document
  std::string section_id;  // its section's ID verbatim; "" for a top-level field
  std::string field_id;    // its ID verbatim (its label where it has no ID)
};

enum class MatchError {
  no_section,         // no section has that ID or label
  ambiguous_section,  // several sections do
  no_field,           // no field matches where the reference looks
  field_in_section,   // three parts, and the field exists only inside sections
  ambiguous_field,    // several fields match
  no_value,           // the field has no string value
};

struct MatchFailure {
  MatchError kind;
  std::string message;  // for people: names the item, the part asked for, the candidates' IDs

  // The item has no such thing (as opposed to "more than one", or a field
  // without a value): the answer a negative cache may remember.
  bool unknown() const noexcept {
    return kind == MatchError::no_section || kind == MatchError::no_field || kind == MatchError::field_in_section;
  }
};

template <class T>
using MatchResult = tl::expected<T, MatchFailure>;

// The field `ref` names in `item` (the root of a full item:
// {"title", "sections": [{"id", "label"}], "fields": [{"id", "label",
// "section": {"id"}, "value"}]}). A field only inside sections, asked for
// with three parts, is `field_in_section` and the message names the
// four-part form(s) to use.
MatchResult<FieldMatch> match_field(json::Node item, const catalog::Reference& ref);

// The matched field's value: a view into the item's (locked) buffer, valid
// while the document lives. `no_value` when it has none, or not a string.
MatchResult<std::string_view> field_value(const FieldMatch& match, const catalog::Reference& ref);

// The all-IDs form of the matched secret: the IDs verbatim, from parts.
catalog::Reference ids_of(const FieldMatch& match, std::string_view vault_id, std::string_view item_id);

// The matched secret's all-IDs and all-names forms, built from parts (a
// title or label may contain '/'): names are the vault name given, the
// item's title, the section's label and the field's label — each the ID
// where there is no non-empty name.
Resolution resolution(json::Node item, const FieldMatch& match, std::string_view vault_id, std::string_view item_id,
                      std::string_view vault_name);

// The IDs of the entries of a list answer (vaults, items) whose `member`
// ("name", "title") equals `name` case-insensitively, in list order.
// Entries without a string `member` and `id` are skipped.
std::vector<std::string> ids_named(json::Node list, std::string_view member, std::string_view name);

}  // namespace chitty::upstream
