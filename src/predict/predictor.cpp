#include "chitty/predict/predictor.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "chitty/log/log.hpp"
#include "chitty/predict/model_file.hpp"

namespace chitty::predict {
namespace {

double percent(std::int64_t p) { return static_cast<double>(p) / 100.0; }

std::chrono::milliseconds ms(Duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d); }

}  // namespace

Options model_options_from(const config::PredictConfig& c) {
  Options o;
  o.startup_window = c.startup_window;
  o.coaccess_window = c.coaccess_window;
  o.coaccess_min_count = static_cast<std::uint32_t>(c.coaccess_min_count);
  o.coaccess_min_probability = percent(c.coaccess_min_percent);
  o.period_tolerance = percent(c.period_tolerance_percent);
  return o;
}

PrefetchOptions prefetch_options_from(const config::PredictConfig& c) {
  PrefetchOptions o;
  o.enabled = c.enabled;
  o.refresh_at = percent(c.refresh_at_percent);
  o.refresh_jitter = percent(c.refresh_jitter_percent);
  o.periodic_lead = c.periodic_lead;
  o.max_per_minute = static_cast<std::uint32_t>(c.max_prefetches_per_minute);
  o.max_per_service_per_minute = static_cast<std::uint32_t>(c.max_prefetches_per_service_per_minute);
  o.upstream_reads_per_hour = static_cast<std::uint32_t>(c.upstream_reads_per_hour);
  o.audit_events_per_minute = static_cast<std::uint32_t>(c.audit_events_per_minute);
  return o;
}

Predictor::Predictor(Deps deps, const config::PredictConfig& config, const std::string& state_dir)
    : deps_(deps),
      path_(state_dir + "/predict.model"),
      model_(model_options_from(config), deps.clock),
      prefetcher_(model_, deps.broker, deps.audit, deps.clock, prefetch_options_from(config)),
      tick_(deps.loop, [this] { on_tick(); }),
      saver_(deps.loop, [this] { save(); }),
      save_interval_(config.save_interval),
      enabled_(config.enabled) {
  auto loaded = load_model(path_, model_, deps_.key);
  if (!loaded) {
    log::error("predict", "prediction model refused; starting with an empty one",
               {{"reason", loaded.error().message}, {"set_aside", path_ + ".refused"}});
    if (std::rename(path_.c_str(), (path_ + ".refused").c_str()) != 0) {
      log::warn("predict", "could not set the refused model aside", {{"path", path_}});
    }
  } else if (*loaded == Loaded::model) {
    log::info("predict", "prediction model loaded", {{"services", model_.services().size()}});
  }
}

Predictor::~Predictor() = default;

void Predictor::start() {
  // A read only ever brings a refresh point nearer; the rest of what the
  // prefetcher does is found by the tick, at most a second away. (Working
  // out the next tick on every read would cost each request a pass over
  // every periodic reference.)
  deps_.broker.on_read([this](const broker::Read& r) {
    if (auto at = prefetcher_.on_read(r); at && running_ && (!tick_.active() || *at < tick_at_)) arm();
  });
  tick_.unref();
  running_ = true;
  arm();
  saver_.start(ms(save_interval_), ms(save_interval_));
  saver_.unref();
  prefetcher_.warm();
}

void Predictor::reconfigure(const config::PredictConfig& config) {
  model_.set_options(model_options_from(config));
  prefetcher_.set_options(prefetch_options_from(config));
  enabled_ = config.enabled;
  arm();
  if (config.save_interval != save_interval_) {
    save_interval_ = config.save_interval;
    saver_.start(ms(save_interval_), ms(save_interval_));
  }
}

void Predictor::arm() {
  if (!running_) return;
  const MonoTime now = deps_.clock.now();
  const MonoTime at = std::min(prefetcher_.next_tick(), now + std::chrono::seconds(1));
  if (tick_.active() && tick_at_ <= at) return;
  // Rounded up: a tick before the time would find nothing due and set itself again.
  const auto wait = std::chrono::ceil<std::chrono::milliseconds>(std::max(at - now, Duration(0)));
  tick_.start(wait);
  tick_at_ = now + wait;
}

void Predictor::on_tick() {
  prefetcher_.tick();
  arm();
}

void Predictor::save() {
  if (!enabled_) return;
  if (auto ok = save_model(path_, model_, deps_.key); !ok) {
    log::warn("predict", "prediction model not saved", {{"reason", ok.error().message}});
  }
}

void Predictor::close() {
  running_ = false;
  deps_.broker.on_read(nullptr);
  save();
  tick_.close();
  saver_.close();
}

}  // namespace chitty::predict
