// Shipping the spool to the sink (docs/audit.md): batches of events after
// the last acknowledged one, POSTed with libcurl on the loop (never blocking
// a request), as NDJSON (Vector, Fluent Bit, Logstash HTTP inputs) or in
// systemd's journal export format (systemd-journal-remote's /upload). A 2xx
// acknowledges the batch: the spool records it and deletes what is wholly
// shipped. Anything else is retried with exponential backoff and jitter.
// At-least-once: an event may arrive twice (its id lets the sink drop the
// copy); none is skipped.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "chitty/audit/spool.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/upstream/http_client.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::audit {

enum class SinkFormat { ndjson, journal_export };

struct ShipperOptions {
  std::string url;
  SinkFormat format = SinkFormat::ndjson;
  const upstream::Token* token = nullptr;  // bearer token, or none
  std::size_t batch_events = 500;
  std::size_t batch_bytes = 1024 * 1024;
  std::chrono::milliseconds interval{200};  // how long events gather before a batch goes
  std::chrono::milliseconds timeout{5000};
  Duration backoff = std::chrono::seconds(1);
  Duration max_backoff = std::chrono::seconds(60);
};

struct ShipperStatus {
  std::optional<WallTime> last_success;
  std::optional<WallTime> last_failure;
  std::string last_error;
  std::uint64_t errors = 0;
  std::uint64_t consecutive_failures = 0;
  std::uint64_t batches = 0;
  std::uint64_t events = 0;  // shipped (acknowledged)
  bool in_flight = false;
};

// The journal export format of one spool line (docs/audit.md).
std::string journal_export_entry(std::string_view line);

class Shipper {
 public:
  Shipper(loop::Loop& loop, upstream::HttpClient& http, Spool& spool, const Clock& clock, ShipperOptions options,
          std::function<double()> random);
  ~Shipper() { close(); }
  Shipper(const Shipper&) = delete;
  Shipper& operator=(const Shipper&) = delete;

  void start();  // ships the backlog left from before
  // New events are in the spool: a batch goes within `interval`.
  void kick();
  void close() noexcept;
  const ShipperStatus& status() const noexcept { return status_; }
  // When the oldest event not yet shipped was written; nullopt when none.
  std::optional<WallTime> oldest_unshipped() const;

 private:
  void ship();
  void on_result(std::uint64_t last_seq, std::size_t count, upstream::HttpResult r);
  void schedule(std::chrono::milliseconds delay);

  upstream::HttpClient& http_;
  Spool& spool_;
  const Clock& clock_;
  ShipperOptions options_;
  std::function<double()> random_;
  loop::Timer timer_;
  ShipperStatus status_;
  bool scheduled_ = false;
  bool closed_ = false;
  upstream::HttpClient::Id request_ = 0;
  MonoTime retry_at_{};
};

}  // namespace chitty::audit
