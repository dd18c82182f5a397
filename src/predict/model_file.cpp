#include "chitty/predict/model_file.hpp"

#include "chitty/secure/signed_text.hpp"

namespace chitty::predict {
namespace {

secure::SignedFile model_file(const std::string& path) {
  // The MAC covers this domain line and the model's text.
  return secure::SignedFile{path, "chitty-agent prediction model v1\n", "prediction model", std::size_t{8} << 20};
}

}  // namespace

Result<void> save_model(const std::string& path, const Model& model, const secure::MacKey& key) {
  return secure::save_signed_state(model_file(path), model, key);
}

Result<Loaded> load_model(const std::string& path, Model& model, const secure::MacKey& key) {
  auto read = secure::load_signed_state(model_file(path), model, key);
  if (!read) return tl::unexpected(read.error());
  return *read ? Loaded::model : Loaded::none;
}

}  // namespace chitty::predict
