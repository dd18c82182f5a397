#include "item_matcher.hpp"

#include <utility>

#include "chitty/base/text.hpp"
#include "connect_text.hpp"

namespace chitty::upstream {
namespace {

using json::Node;

bool is_string(Node n) noexcept { return n.is(Node::Type::string); }

// Matches `part` by ID or label, case-insensitively.
bool matches_part(Node id, Node label, std::string_view part) noexcept {
  return (is_string(id) && iequals(id.text(), part)) || (is_string(label) && iequals(label.text(), part));
}

tl::unexpected<MatchFailure> failure(MatchError kind, std::string message) {
  return tl::unexpected(MatchFailure{kind, std::move(message)});
}

// The label of the section with ID `section_id` (the last such section's,
// as Connect lists them), or nullopt; only labels `usable` accepts count.
template <class Usable>
std::optional<std::string> section_label(Node item, std::string_view section_id, Usable usable) {
  std::optional<std::string> found;
  for (Node sec : item.get("sections")) {
    Node id = sec.get("id");
    Node label = sec.get("label");
    if (is_string(id) && id.text() == section_id && is_string(label) && !label.text().empty() &&
        usable(label.text())) {
      found = std::string(label.text());
    }
  }
  return found;
}

}  // namespace

MatchResult<FieldMatch> match_field(Node item, const catalog::Reference& ref) {
  std::string item_shown = quoted(ref.item);

  // The section, when the reference names one.
  std::string section_id;
  if (ref.section) {
    std::vector<std::string> ids;
    for (Node s : item.get("sections")) {
      Node id = s.get("id");
      if (matches_part(id, s.get("label"), *ref.section) && is_string(id)) ids.emplace_back(id.text());
    }
    if (ids.empty()) return failure(MatchError::no_section, "item " + item_shown + " has no section " + quoted(*ref.section));
    if (ids.size() > 1) {
      return failure(MatchError::ambiguous_section,
                     std::to_string(ids.size()) + " sections of item " + item_shown + " match " + quoted(*ref.section) +
                         " (" + list_ids(ids) + "); name the section by its ID");
    }
    section_id = ids.front();
  }

  // The field: by ID or label, within the section named; without a
  // section, among the fields outside every section only. A field that
  // exists only in a section is named by its four-part form.
  std::vector<FieldMatch> found, in_sections;
  for (Node f : item.get("fields")) {
    Node id = f.get("id");
    Node label = f.get("label");
    if (!matches_part(id, label, ref.field)) continue;
    Node sec = f.get("section").get("id");
    FieldMatch c{f, is_string(sec) ? std::string(sec.text()) : std::string(),
                 std::string(is_string(id) ? id.text() : label.text())};
    if (ref.section) {
      if (c.section_id == section_id) found.push_back(std::move(c));
    } else if (c.section_id.empty()) {
      found.push_back(std::move(c));
    } else {
      in_sections.push_back(std::move(c));
    }
  }
  if (found.empty()) {
    if (!in_sections.empty()) {
      // The four-part form by the section's label — unless it holds '/',
      // which a reference cannot spell — else by its ID.
      std::string forms;
      for (const auto& c : in_sections) {
        auto label = section_label(item, c.section_id, [](std::string_view l) { return l.find('/') == std::string_view::npos; });
        std::string section = label ? *label : c.section_id;
        forms += (forms.empty() ? "" : ", ") +
                 printable(catalog::Reference{ref.vault, ref.item, section, ref.field}.display(), 300) + " (section " +
                 printable(c.section_id, 64) + ")";
      }
      return failure(MatchError::field_in_section,
                     "item " + item_shown + " has no top-level field " + quoted(ref.field) +
                         "; a three-part reference does not reach into sections. It is in a section: use " + forms);
    }
    return failure(MatchError::no_field, "item " + item_shown + " has no field " + quoted(ref.field) +
                                             (ref.section ? " in section " + quoted(*ref.section) : std::string()));
  }
  if (found.size() > 1) {
    std::vector<std::string> ids;
    ids.reserve(found.size());
    for (const auto& c : found) ids.push_back(c.section_id.empty() ? c.field_id : c.section_id + "/" + c.field_id);
    return failure(MatchError::ambiguous_field,
                   std::to_string(found.size()) + " fields of item " + item_shown + " match " + quoted(ref.field) +
                       " (" + list_ids(ids) + "); name the section, or the field by its ID");
  }
  return std::move(found.front());
}

MatchResult<std::string_view> field_value(const FieldMatch& match, const catalog::Reference& ref) {
  Node value = match.field.get("value");
  if (!is_string(value)) {
    return failure(MatchError::no_value, "field " + quoted(ref.field) + " of item " + quoted(ref.item) + " has no value");
  }
  return value.text();
}

catalog::Reference ids_of(const FieldMatch& match, std::string_view vault_id, std::string_view item_id) {
  return catalog::Reference{
      std::string(vault_id), std::string(item_id),
      match.section_id.empty() ? std::nullopt : std::optional<std::string>(match.section_id), match.field_id};
}

Resolution resolution(Node item, const FieldMatch& match, std::string_view vault_id, std::string_view item_id,
                      std::string_view vault_name) {
  catalog::Reference ids = ids_of(match, vault_id, item_id);
  std::optional<std::string> section;
  if (!match.section_id.empty()) {
    auto label = section_label(item, match.section_id, [](std::string_view) { return true; });
    section = label ? *label : match.section_id;
  }
  Node title = item.get("title");
  Node label = match.field.get("label");
  catalog::Reference names{std::string(vault_name),
                           is_string(title) && !title.text().empty() ? std::string(title.text()) : std::string(item_id),
                           std::move(section),
                           is_string(label) && !label.text().empty() ? std::string(label.text()) : match.field_id};
  std::string key = ids.id_key();
  return Resolution{std::move(ids), std::move(names), std::move(key)};
}

std::vector<std::string> ids_named(Node list, std::string_view member, std::string_view name) {
  std::vector<std::string> ids;
  for (Node entry : list) {
    Node n = entry.get(member);
    Node id = entry.get("id");
    if (!is_string(n) || !is_string(id)) continue;
    if (iequals(n.text(), name)) ids.emplace_back(id.text());
  }
  return ids;
}

}  // namespace chitty::upstream
