#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <cstdlib>
#include <string>

#include "chitty/log/journal.hpp"

using chitty::log::Field;
using chitty::log::Level;
using chitty::log::Record;

namespace {

bool has(const std::vector<std::string>& fields, const std::string& f) {
  for (const auto& x : fields) {
    if (x == f) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("journal fields: message, priority, identifier, module and one CHITTY_ field per record field",
          "[log][journal]") {
  Field fields[] = {{"request_id", "0123456789abcdef"}, {"service", "chittyregistry"}, {"uid", 1001},
                    {"ok", true}, {"token", chitty::log::redact(std::string_view("s3cret-value"))}};
  Record r{chitty::WallTime{}, Level::warning, "server", "request refused", fields};
  auto f = chitty::log::journal_fields(r, "chitty-agent");
  CHECK(has(f, "MESSAGE=request refused"));
  CHECK(has(f, "PRIORITY=4"));
  CHECK(has(f, "SYSLOG_IDENTIFIER=chitty-agent"));
  CHECK(has(f, "CHITTY_MODULE=server"));
  CHECK(has(f, "CHITTY_REQUEST_ID=0123456789abcdef"));
  CHECK(has(f, "CHITTY_SERVICE=chittyregistry"));
  CHECK(has(f, "CHITTY_UID=1001"));
  CHECK(has(f, "CHITTY_OK=true"));
  CHECK(has(f, "CHITTY_TOKEN=[redacted 12 bytes]"));
  for (const auto& x : f) CHECK(x.find("s3cret") == std::string::npos);
}

TEST_CASE("journal priorities follow syslog", "[log][journal]") {
  auto priority = [](Level l) {
    Record r{chitty::WallTime{}, l, "t", "m", {}};
    return chitty::log::journal_fields(r, "x").at(1);
  };
  CHECK(priority(Level::debug) == "PRIORITY=7");
  CHECK(priority(Level::info) == "PRIORITY=6");
  CHECK(priority(Level::warning) == "PRIORITY=4");
  CHECK(priority(Level::error) == "PRIORITY=3");
}

TEST_CASE("journal field names are valid journal names", "[log][journal]") {
  CHECK(chitty::log::journal_field_name("request_id") == "CHITTY_REQUEST_ID");
  CHECK(chitty::log::journal_field_name("agent.socket") == "CHITTY_AGENT_SOCKET");
  CHECK(chitty::log::journal_field_name("Mixed-Case 9") == "CHITTY_MIXED_CASE_9");
  CHECK(chitty::log::journal_field_name("module") == "CHITTY_FIELD_MODULE");  // CHITTY_MODULE is the topic
  CHECK(chitty::log::journal_field_name(std::string(100, 'k')).size() == 64);  // journald's limit
  for (std::string key : {"a", "x.y", "ü"}) {
    std::string n = chitty::log::journal_field_name(key);
    for (char c : n) CHECK(((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'));
    CHECK(n.front() != '_');
  }
}

TEST_CASE("stderr counts as the journal only when JOURNAL_STREAM names it", "[log][journal]") {
  struct stat st {};
  REQUIRE(fstat(2, &st) == 0);
  std::string mine = std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
  setenv("JOURNAL_STREAM", mine.c_str(), 1);
  CHECK(chitty::log::stderr_is_journal());
  setenv("JOURNAL_STREAM", (std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino + 1)).c_str(), 1);
  CHECK_FALSE(chitty::log::stderr_is_journal());  // inherited from a parent, stderr redirected since
  setenv("JOURNAL_STREAM", "garbage", 1);
  CHECK_FALSE(chitty::log::stderr_is_journal());
  unsetenv("JOURNAL_STREAM");
  CHECK_FALSE(chitty::log::stderr_is_journal());
}
