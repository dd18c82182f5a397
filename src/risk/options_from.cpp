#include "chitty/risk/options_from.hpp"

namespace chitty::risk {

Options options_from(const config::RiskConfig& c) {
  Options o;
  const config::RiskWeights& w = c.weights;
  // In Factor order (engine.hpp).
  const std::array<std::int64_t, kFactors> weights{
      w.identity_partial, w.service_mismatch, w.purpose_not_allowed, w.first_access,          w.new_references,
      w.new_executable,   w.new_unit,         w.new_uid,             w.unusual_hour,          w.unusual_hour_activity,
      w.burst,            w.enumeration,      w.recently_revoked};
  for (std::size_t i = 0; i < kFactors; ++i) o.weights[i] = static_cast<int>(weights[i]);
  o.learning_period = c.learning_period;
  o.learning_requests = static_cast<std::uint32_t>(c.learning_requests);
  o.enumeration_window = c.enumeration_window;
  o.enumeration_refs = static_cast<std::uint32_t>(c.enumeration_refs);
  o.enumeration_failures = static_cast<std::uint32_t>(c.enumeration_failures);
  o.novelty_window = c.novelty_window;
  o.novelty_refs = static_cast<std::uint32_t>(c.novelty_refs);
  o.odd_hours_window = c.odd_hours_window;
  o.odd_hours_requests = static_cast<std::uint32_t>(c.odd_hours_requests);
  o.burst_min = static_cast<std::uint32_t>(c.burst_min);
  o.burst_factor = static_cast<double>(c.burst_factor_percent) / 100.0;
  o.unusual_hour_share = static_cast<double>(c.unusual_hour_percent) / 100.0;
  o.hours_learning_period = c.hours_learning_period;
  o.revoked_within = c.revoked_within;
  for (const auto& cat : c.categories) o.category_purposes.emplace_back(cat.name, cat.purposes);
  return o;
}

}  // namespace chitty::risk
