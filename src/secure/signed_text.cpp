#include "chitty/secure/signed_text.hpp"

#include <cerrno>

#include "chitty/base/file.hpp"

namespace chitty::secure {
namespace {

constexpr std::string_view kMacLine = "mac ";

}  // namespace

Result<void> save_signed_text(const SignedFile& f, std::string text, const MacKey& key) {
  if (!text.empty() && text.back() != '\n') text += '\n';
  const std::string mac = to_hex(key.mac(f.domain, text));
  text += kMacLine;
  text += mac;
  text += '\n';
  if (text.size() > f.max_bytes) {
    return fail("the " + std::string(f.what) + " is larger than " + std::to_string(f.max_bytes) + " bytes");
  }
  return write_file_atomically(f.path, text);
}

Result<std::optional<std::string>> load_signed_text(const SignedFile& f, const MacKey& key) {
  const std::string name = std::string(f.what) + " " + f.path;
  FileRules rules;
  rules.max_bytes = f.max_bytes;
  rules.owner_only = true;
  rules.owned_by_agent = true;
  auto text = read_file(f.path, rules);
  if (!text) {
    if (text.error().kind == FileFailure::Kind::open && text.error().error == ENOENT) return std::nullopt;
    return fail(text.error().message(name));
  }
  // The last line is "mac <hex>"; what comes before it is the text.
  std::string_view all = *text;
  if (all.empty() || all.back() != '\n') return fail(name + " is cut short (no MAC line)");
  const std::size_t start = all.rfind('\n', all.size() - 2);
  const std::string_view body = start == std::string_view::npos ? std::string_view() : all.substr(0, start + 1);
  std::string_view last = all.substr(body.size(), all.size() - body.size() - 1);
  MacKey::Mac given{};
  if (last.substr(0, kMacLine.size()) != kMacLine || !from_hex(last.substr(kMacLine.size()), given)) {
    return fail(name + " has no MAC line");
  }
  if (key.mac(f.domain, body) != given) {
    return fail(name + " does not verify under the audit chain key (changed, or written with another key): refused");
  }
  return std::string(body);
}

}  // namespace chitty::secure
