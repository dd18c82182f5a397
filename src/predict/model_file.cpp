#include "chitty/predict/model_file.hpp"

#include <cerrno>

#include "chitty/base/file.hpp"

namespace chitty::predict {
namespace {

// The MAC covers this prefix and the model's text, so that neither an audit
// line nor a revocations file (MAC'd under the same key) can pass for a
// model, nor the other way round.
constexpr std::string_view kDomain = "chitty-agent prediction model v1\n";
constexpr std::string_view kMacLine = "mac ";
constexpr std::size_t kMaxFile = std::size_t{8} * 1024 * 1024;

}  // namespace

Result<void> save_model(const std::string& path, const Model& model, const secure::MacKey& key) {
  std::string text = model.serialize();
  if (!text.empty() && text.back() != '\n') text += '\n';
  const std::string mac = secure::to_hex(key.mac(kDomain, text));
  text += kMacLine;
  text += mac;
  text += '\n';
  if (text.size() > kMaxFile) return fail("the prediction model is larger than " + std::to_string(kMaxFile) + " bytes");
  return write_file_atomically(path, text);
}

Result<Loaded> load_model(const std::string& path, Model& model, const secure::MacKey& key) {
  FileRules rules;
  rules.max_bytes = kMaxFile;
  rules.owner_only = true;
  rules.owned_by_agent = true;
  auto text = read_file(path, rules);
  if (!text) {
    if (text.error().kind == FileFailure::Kind::open && text.error().error == ENOENT) return Loaded::none;
    return fail(text.error().message("prediction model " + path));
  }
  // The last line is "mac <hex>"; what comes before it is the model.
  std::string_view all = *text;
  if (all.empty() || all.back() != '\n') return fail("prediction model " + path + " is cut short (no MAC line)");
  const std::size_t start = all.rfind('\n', all.size() - 2);
  const std::string_view body = start == std::string_view::npos ? std::string_view() : all.substr(0, start + 1);
  std::string_view last = all.substr(body.size(), all.size() - body.size() - 1);
  secure::MacKey::Mac given{};
  if (last.substr(0, kMacLine.size()) != kMacLine || !secure::from_hex(last.substr(kMacLine.size()), given)) {
    return fail("prediction model " + path + " has no MAC line");
  }
  if (key.mac(kDomain, body) != given) {
    return fail("prediction model " + path + " does not verify under the audit chain key (changed, or written with "
                "another key): refused");
  }
  if (auto ok = model.parse(body); !ok) return fail("prediction model " + path + ": " + ok.error().message);
  return Loaded::model;
}

}  // namespace chitty::predict
