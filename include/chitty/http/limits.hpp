// What one client may grow: sizes and times, from [agent] in the config.
#pragma once

#include <chrono>
#include <cstdint>

namespace chitty::http {

struct Limits {
  std::uint64_t max_header_bytes = 16 * 1024;  // names + values of all header fields
  std::uint32_t max_headers = 64;
  std::uint64_t max_uri_bytes = 8 * 1024;
  std::uint64_t max_body_bytes = 64 * 1024;
  std::uint32_t max_requests_per_connection = 1000;
  std::uint32_t max_pipelined_requests = 16;
  // Answers holding a secret that may wait unwritten (or half-written); no
  // new request starts while this many do.
  std::uint32_t max_secret_responses = 4;

  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds body_timeout{10'000};
  std::chrono::milliseconds write_timeout{10'000};
};

}  // namespace chitty::http
