#include "chitty/app/risk_keeper.hpp"

#include <cstdio>

#include "chitty/log/log.hpp"
#include "chitty/risk/baselines_file.hpp"
#include "chitty/risk/options_from.hpp"

namespace chitty::app {
namespace {

std::chrono::milliseconds ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }

}  // namespace

RiskKeeper::RiskKeeper(loop::Loop& loop, const Clock& clock, const secure::MacKey& key,
                       const config::RiskConfig& config, const std::string& state_dir)
    : engine_(risk::options_from(config), clock),
      path_(state_dir + "/risk.baselines"),
      key_(key),
      saver_(loop, [this] { save(); }),
      save_interval_(config.save_interval),
      enabled_(config.enabled) {
  auto loaded = secure::load_signed_state(risk::baselines_file(path_), engine_, key_);
  if (!loaded) {
    log::error("risk", "risk baselines refused; every service learns again",
               {{"reason", loaded.error().message}, {"set_aside", path_ + ".refused"}});
    if (std::rename(path_.c_str(), (path_ + ".refused").c_str()) != 0) {
      log::warn("risk", "could not set the refused baselines aside", {{"path", path_}});
    }
  } else if (*loaded) {
    log::info("risk", "risk baselines loaded", {{"path", path_}});
  }
}

void RiskKeeper::start() {
  saver_.start(ms(save_interval_), ms(save_interval_));
  saver_.unref();
}

void RiskKeeper::reconfigure(const config::RiskConfig& config) {
  engine_.set_options(risk::options_from(config));
  enabled_ = config.enabled;
  if (config.save_interval != save_interval_) {
    save_interval_ = config.save_interval;
    saver_.start(ms(save_interval_), ms(save_interval_));
  }
}

void RiskKeeper::save() {
  if (!enabled_) return;
  if (auto ok = secure::save_signed_state(risk::baselines_file(path_), engine_, key_); !ok) {
    log::warn("risk", "risk baselines not saved", {{"reason", ok.error().message}});
  }
}

void RiskKeeper::close() {
  save();
  saver_.close();
}

Result<void> StepUpTokens::open(const std::vector<config::ServiceConfig>& services) {
  for (const auto& s : services) {
    if (s.step_up_token_file.empty()) continue;
    auto slot = std::make_unique<upstream::TokenSlot>(arena_, sealer_, "service \"" + s.name + "\" step_up_token_file");
    if (auto r = slot->open(s.step_up_token_file); !r) return r;
    slots_[s.name] = std::move(slot);
  }
  return {};
}

void StepUpTokens::reload(const std::vector<config::ServiceConfig>& services) {
  std::map<std::string, std::unique_ptr<upstream::TokenSlot>, std::less<>> next;
  for (const auto& s : services) {
    if (s.step_up_token_file.empty()) continue;
    auto it = slots_.find(s.name);
    if (it != slots_.end()) {
      it->second->reload(s.step_up_token_file);
      next[s.name] = std::move(it->second);
      continue;
    }
    auto slot = std::make_unique<upstream::TokenSlot>(arena_, sealer_, "service \"" + s.name + "\" step_up_token_file");
    if (auto r = slot->open(s.step_up_token_file); !r) {
      log::error("risk", "a step-up token could not be read; the service's step-up requests are refused",
                 {{"service", s.name}, {"reason", r.error().message}});
      continue;
    }
    next[s.name] = std::move(slot);
  }
  slots_ = std::move(next);
}

const upstream::Token* StepUpTokens::get(std::string_view service) const {
  auto it = slots_.find(service);
  return it == slots_.end() ? nullptr : it->second->get();
}

}  // namespace chitty::app
