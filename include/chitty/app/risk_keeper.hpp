// Risk scoring as the root wires it (docs/risk.md): the engine; its
// baselines, loaded from <state_dir>/risk.baselines and saved every
// `[risk] save_interval` and when the agent stops, MAC'd under the audit
// chain key; and the services' step-up tokens.
//
// Thread: loop thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/mac_key.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::app {

class RiskKeeper {
 public:
  // Loads the baselines when there is a file. One that does not verify is
  // refused: logged, set aside as risk.baselines.refused, and the agent
  // starts with none (every service learns again) — never with baselines an
  // attacker wrote.
  RiskKeeper(loop::Loop& loop, const Clock& clock, const secure::MacKey& key, const config::RiskConfig& config,
             const std::string& state_dir);
  RiskKeeper(const RiskKeeper&) = delete;
  RiskKeeper& operator=(const RiskKeeper&) = delete;

  // The engine while scoring is on; null while it is off.
  risk::Engine* scoring() noexcept { return enabled_ ? &engine_ : nullptr; }
  const risk::Engine& engine() const noexcept { return engine_; }

  void start();
  void reconfigure(const config::RiskConfig& config);
  // Saves the baselines and closes the timer (the agent is stopping).
  void close();

 private:
  void save();

  risk::Engine engine_;
  std::string path_;
  const secure::MacKey& key_;
  loop::Timer saver_;
  Duration save_interval_;
  bool enabled_;
};

// The services' step-up tokens ([[service]] step_up_token_file), sealed in
// the arena like the emergency token.
class StepUpTokens {
 public:
  StepUpTokens(secure::Arena& arena, secure::Sealer& sealer) : arena_(arena), sealer_(sealer) {}
  // At start: a file that cannot be read is an error (the agent does not start).
  [[nodiscard]] Result<void> open(const std::vector<config::ServiceConfig>& services);
  // SIGHUP: files re-read, new ones opened, services without one dropped. A
  // file that cannot be read leaves that service without a token (its
  // step-up requests are refused) or with the one in use (TokenSlot).
  void reload(const std::vector<config::ServiceConfig>& services);
  // Null when `service` has none.
  const upstream::Token* get(std::string_view service) const;

 private:
  secure::Arena& arena_;
  secure::Sealer& sealer_;
  std::map<std::string, std::unique_ptr<upstream::TokenSlot>, std::less<>> slots_;
};

}  // namespace chitty::app
