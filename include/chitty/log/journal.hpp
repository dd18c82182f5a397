// Logging to the systemd journal with structured fields, used instead of
// stderr JSON when stderr is connected to the journal (JOURNAL_STREAM).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "chitty/log/log.hpp"

namespace chitty::log {

// The journal fields of a record, each "NAME=value": MESSAGE, PRIORITY
// (syslog level), SYSLOG_IDENTIFIER, CHITTY_MODULE (the topic) and one
// CHITTY_<KEY> per field (request_id -> CHITTY_REQUEST_ID, service ->
// CHITTY_SERVICE). Names are upper-cased with anything outside [A-Z0-9_]
// turned into '_'. Redacted values appear as "[redacted N bytes]".
std::vector<std::string> journal_fields(const Record& r, std::string_view identifier);

// The journal field name for a record field key ("request_id" -> "CHITTY_REQUEST_ID").
std::string journal_field_name(std::string_view key);

// True when $JOURNAL_STREAM names the device and inode of our stderr, i.e.
// systemd connected stderr to journald (and the variable was not merely
// inherited from a parent).
bool stderr_is_journal();

// Sends one entry with exactly these "NAME=value" fields to the journal
// (values may hold any bytes). False when journald refused it.
bool journal_send(const std::vector<std::string>& fields) noexcept;

class JournalSink final : public Sink {
 public:
  explicit JournalSink(std::string identifier = "chitty-agent") : identifier_(std::move(identifier)) {}
  void write(const Record& r) noexcept override;

 private:
  std::string identifier_;
};

}  // namespace chitty::log
