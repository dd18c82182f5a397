// The model kept in the state directory across restarts: the model's text
// form and a MAC under the audit chain key (docs/prediction.md, "The model
// file"). A file whose MAC does not verify is refused, never half-trusted.
//
// Thread: loop thread (the file is small: references and counts).
#pragma once

#include <string>

#include "chitty/base/result.hpp"
#include "chitty/predict/model.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::predict {

// Replaces `path` atomically with `model` and its MAC.
[[nodiscard]] Result<void> save_model(const std::string& path, const Model& model, const secure::MacKey& key);

// What load_model() found.
enum class Loaded { model, none };  // none: no file yet (a first start)

// Reads `path` into `model`: refused (the model left as it was) when the
// file is not the agent's private file, its MAC does not verify under
// `key`, or its text is not a model.
[[nodiscard]] Result<Loaded> load_model(const std::string& path, Model& model, const secure::MacKey& key);

}  // namespace chitty::predict
