// The fake audit sink (tests/fakes/audit-sink/sink.js) as a child process of
// an integration test, plus its admin API (modes, the stored events, the
// request log). See tests/fakes/audit-sink/README.md for the JSON shapes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <string>
#include <vector>

#include "connect_emulator.hpp"  // HttpReply, http_request, json_quote
#include "node_child.hpp"
#include "temp_dir.hpp"

namespace chitty::testing {

class AuditSink {
 public:
  // Starts `node sink.js --store DIR/store.ndjson` (DIR: a private temp dir)
  // on a free port, or on `port` if non-zero, and waits for its port file.
  // With an empty `token` the sink accepts any Authorization (or none).
  // Throws std::runtime_error (with the sink's log) on failure or timeout.
  explicit AuditSink(std::string token = "sink-token", int port = 0);
  ~AuditSink();  // SIGTERM, then SIGKILL after 3 s; reaps
  AuditSink(const AuditSink&) = delete;
  AuditSink& operator=(const AuditSink&) = delete;

  // $CHITTY_SOURCE_ROOT/tests/fakes/audit-sink/sink.js (throws if the variable is unset).
  static std::string script();

  std::string url() const;  // "http://127.0.0.1:PORT/ingest"
  int port() const noexcept { return child_.port(); }
  pid_t pid() const noexcept { return child_.pid(); }
  const std::string& token() const noexcept { return token_; }
  bool running() { return child_.running(); }

  void kill() { child_.kill(); }  // SIGKILL now (an outage); reaps. The port stays reserved for restart().
  void restart();  // (kills if running, then) starts again on the same port with the same store file
  // SIGTERM and wait; true when it exited with status 0.
  bool stop(std::chrono::milliseconds timeout = std::chrono::seconds(5)) { return child_.stop(timeout); }

  // POST /__sink/mode. `mode`: accept, fail, hang, slow, reject, drop,
  // drop-after-store, hang-after-store. count <= 0: until changed, else for
  // the next `count` ingest requests (then back to accept). delay_ms <= 0:
  // the sink's default (1000 ms for "slow", else none). status > 0: the
  // answer's status for "fail" (default 500) and "reject" (default 400).
  void mode(const std::string& mode, int count = 0, int delay_ms = 0, int status = 0);
  std::string events_json();    // GET /__sink/events
  std::string requests_json();  // GET /__sink/requests
  void reset();                 // POST /__sink/reset (events, counters, log, mode, store file)

  // The "id" of every stored event, in arrival order (GET /__sink/ids).
  std::vector<std::string> event_ids();
  // Polls until at least `n` events are stored; false on timeout.
  bool wait_for_events(std::size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));

  // POSTs `ndjson` to the ingest path with `Authorization: Bearer <token()>`
  // (none if `token` is given empty). The request's Content-Type is
  // application/json (http_request's), not application/x-ndjson.
  HttpReply post(const std::string& ndjson);
  HttpReply post(const std::string& ndjson, const std::string& token);

  std::string store_text() const;  // the --store file's content
  const std::string& store_path() const noexcept { return store_path_; }
  std::string log() const { return child_.log(); }  // the sink's stderr (all runs)
  const TempDir& dir() const noexcept { return dir_; }

 private:
  void start(int requested_port);
  std::string admin_get(const std::string& target);
  std::string admin_post(const std::string& target, const std::string& json_body);

  TempDir dir_;
  std::string token_;
  std::string store_path_;
  NodeChild child_;
};

}  // namespace chitty::testing
