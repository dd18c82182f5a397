// The scoring options `[risk]`, `[risk.weights]` and `[[risk.category]]`
// describe (docs/config.md).
#pragma once

#include "chitty/config/config.hpp"
#include "chitty/risk/engine.hpp"

namespace chitty::risk {

Options options_from(const config::RiskConfig& c);

}  // namespace chitty::risk
