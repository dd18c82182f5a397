// Environment variables as a source (the seed's migration table: each
// catalog entry may name one, e.g. OPENAI_API_KEY).
//
// Values are imported once, at start: copied into the locked arena, sealed,
// and scrubbed from the process — the variable is removed from `environ` and
// its original bytes (which /proc/PID/environ shows) are overwritten with
// zeros. A variable first named by a reloaded configuration is imported then,
// if the process still has it.
//
// Thread: loop thread only.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "chitty/loop/task_queue.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealed_value.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::upstream {

class EnvProvider final : public Provider {
 public:
  EnvProvider(secure::Arena& arena, secure::Sealer& sealer, loop::TaskQueue& tasks);
  ~EnvProvider() override;
  EnvProvider(const EnvProvider&) = delete;
  EnvProvider& operator=(const EnvProvider&) = delete;

  struct ImportReport {
    std::vector<std::string> imported;  // names now held
    std::vector<std::string> missing;   // not set in the environment
    std::vector<std::string> failed;    // set but not importable (too large, no locked memory)
  };
  // Imports each named variable not yet held and scrubs it from the process
  // environment (every copy of it, if the environment names it twice; the
  // first is the value, as getenv() would have said).
  ImportReport import(const std::vector<std::string>& names);
  // Scrubs each named variable from the process environment without
  // importing it: the catalog names it, but environment fallbacks are off
  // ([fallback] env = false). A secret the agent will not serve must not
  // linger in /proc/PID/environ either. Returns the names that were set.
  std::vector<std::string> scrub(const std::vector<std::string>& names);
  // The catalog's variables: imported when `serve` (environment fallbacks
  // on), else scrubbed; what happened is logged (names, never values).
  void take(const std::vector<std::string>& names, bool serve);

  std::string_view source() const noexcept override { return "env"; }
  bool holds(const catalog::Entry* entry) const noexcept override { return entry != nullptr && !entry->env.empty(); }
  void fetch(const FetchRequest& request, FetchDone done) override;

  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::size_t size() const noexcept { return values_.size(); }

 private:
  FetchResult open(const std::string& name) const;

  secure::Arena& arena_;
  secure::Sealer& sealer_;
  loop::TaskQueue& tasks_;
  std::unordered_map<std::string, secure::SealedValue> values_;
};

}  // namespace chitty::upstream
