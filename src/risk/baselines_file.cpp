#include "chitty/risk/baselines_file.hpp"

#include "chitty/secure/signed_text.hpp"

namespace chitty::risk {
namespace {

secure::SignedFile baselines_file(const std::string& path) {
  // The MAC covers this domain line and the baselines' text.
  return secure::SignedFile{path, "chitty-agent risk baselines v1\n", "risk baselines", std::size_t{8} << 20};
}

}  // namespace

Result<void> save_baselines(const std::string& path, const Engine& engine, const secure::MacKey& key) {
  return secure::save_signed_text(baselines_file(path), engine.serialize(), key);
}

Result<Loaded> load_baselines(const std::string& path, Engine& engine, const secure::MacKey& key) {
  auto text = secure::load_signed_text(baselines_file(path), key);
  if (!text) return tl::unexpected(text.error());
  if (!*text) return Loaded::none;
  if (auto ok = engine.parse(**text); !ok) return fail("risk baselines " + path + ": " + ok.error().message);
  return Loaded::baselines;
}

}  // namespace chitty::risk
