// Prediction as the root wires it (docs/prediction.md): the model, loaded
// from the state directory and MAC'd under the audit chain key; the
// prefetcher; and the timers that drive them — a tick when the prefetcher
// next has something to do (at least every second), the model saved every
// `save_interval` and when the agent stops.
//
// Thread: loop thread only.
#pragma once

#include <memory>
#include <string>

#include "chitty/audit/audit.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/config/config.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/predict/model.hpp"
#include "chitty/predict/prefetcher.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::predict {

// The options `[predict]` describes.
Options model_options_from(const config::PredictConfig& c);
PrefetchOptions prefetch_options_from(const config::PredictConfig& c);

class Predictor {
 public:
  struct Deps {
    loop::Loop& loop;
    broker::Broker& broker;
    audit::Recorder& audit;
    const Clock& clock;
    const secure::MacKey& key;  // the audit chain key
  };

  // Loads <state_dir>/predict.model when there is one. A model that does not
  // verify is refused: logged, set aside as predict.model.refused, and the
  // agent starts with an empty model (it learns again) — never with one an
  // attacker wrote.
  Predictor(Deps deps, const config::PredictConfig& config, const std::string& state_dir);
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  // Wires the broker's reads, warms every known start-up set, starts the timers.
  void start();
  void reconfigure(const config::PredictConfig& config);
  // Saves the model and closes the timers (the agent is stopping).
  void close();

  Model& model() noexcept { return model_; }
  const Model& model() const noexcept { return model_; }
  const Prefetcher& prefetcher() const noexcept { return prefetcher_; }

 private:
  void save();
  // Sets the tick for prefetcher_.next_tick() (at most a second away) unless
  // it is already set sooner.
  void arm();
  void on_tick();

  Deps deps_;
  std::string path_;
  Model model_;
  Prefetcher prefetcher_;
  loop::Timer tick_;
  MonoTime tick_at_{};  // when tick_ fires; meaningful while it is active
  bool running_ = false;  // between start() and close()
  loop::Timer saver_;
  Duration save_interval_;
  bool enabled_;
};

}  // namespace chitty::predict
