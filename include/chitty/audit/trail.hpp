// The whole audit trail as one object, opened from its configuration
// section (docs/audit.md): the chain key, and — when `[audit] durable` —
// the spool (recovered), the recorder on it, the shipper and the sink's
// HTTP client. The composition root opens it with one call, records state
// events through it and closes it at stop.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "chitty/audit/audit.hpp"
#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/mac_key.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/http_client.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::audit {

class Trail {
 public:
  struct Deps {
    loop::Loop& loop;
    loop::TaskQueue& tasks;
    secure::Arena& arena;
    secure::Sealer& sealer;
    const Clock& clock;
    std::function<double()> jitter;  // [0, 1): the shipper's backoff
  };
  // Opens the trail `config` describes in `state_dir`. The chain key comes
  // from `chain_key_file`, or is generated into <state_dir>/audit-chain.key
  // (with a warning: it then sits beside the spool). A spool recovered with
  // a torn or damaged tail is reported by alert events. Errors name the file
  // and the reason; the agent does not start without its trail.
  [[nodiscard]] static Result<std::unique_ptr<Trail>> open(Deps deps, const config::AuditConfig& config, const std::string& state_dir);
  ~Trail();
  Trail(const Trail&) = delete;
  Trail& operator=(const Trail&) = delete;

  // Where every decision goes.
  Recorder& recorder() noexcept { return spool_recorder_ ? static_cast<Recorder&>(*spool_recorder_) : memory_; }
  const secure::MacKey& chain_key() const noexcept { return *chain_key_; }
  // The durable parts; null with `durable = false`, or without a sink.
  const Spool* spool() const noexcept { return spool_.get(); }
  const Shipper* shipper() const noexcept { return shipper_.get(); }
  const SpoolRecorder* spool_recorder() const noexcept { return spool_recorder_.get(); }

  // The mode state events record (the broker's), asked each time.
  void on_mode(std::function<std::string()> mode) { mode_ = std::move(mode); }
  // Records a state event (start, stop, reload, mode, revoke-resolved): its
  // time and mode are filled in; a failure is logged (there is no request to
  // refuse).
  void state(Event e);
  // An alert: logged as an error and recorded.
  void alert(std::string message);
  // A state event of `kind` and `action` with `reason` (a reload refused is
  // `deny` with its code).
  void state(Kind kind, std::string action, std::string reason, Decision decision = Decision::none,
             std::string code = "");

  // Starts shipping (after the start event).
  void start();
  // The last sync and chain head, then the shipper and sink client stop.
  // Idempotent.
  void close();

 private:
  explicit Trail(Deps deps) : deps_(std::move(deps)) {}
  [[nodiscard]] Result<void> open_key(const config::AuditConfig& config, const std::string& state_dir);
  [[nodiscard]] Result<void> open_spool(const config::AuditConfig& config, const std::string& state_dir);
  [[nodiscard]] Result<void> open_sink(const config::AuditConfig& config);

  Deps deps_;
  std::function<std::string()> mode_;
  MemoryRecorder memory_;
  // Destroyed in reverse: the recorder (which kicks the shipper) first, the
  // spool and its key last.
  std::unique_ptr<secure::MacKey> chain_key_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<upstream::Token> sink_token_;
  std::unique_ptr<upstream::HttpClient> sink_http_;
  std::unique_ptr<Shipper> shipper_;
  std::unique_ptr<SpoolRecorder> spool_recorder_;
  Recovery recovery_;
  bool closed_ = false;
};

// `chitty-agent --verify-audit PATH --chain-key FILE [--head SEQ:MAC]`:
// checks a spool directory or an exported NDJSON stream ("-" for standard
// input) and prints the verdict or the first break. Returns 0 when the
// chain is intact, 1 when it is broken, 2 on a usage problem.
int verify_command(const std::string& path, const std::string& key_file, const std::optional<std::string>& head);

}  // namespace chitty::audit
