#include "chitty/log/journal.hpp"

#include <sys/stat.h>
#include <sys/uio.h>

#include <cstdio>
#include <cstdlib>

#include <systemd/sd-journal.h>

#include "chitty/base/text.hpp"

namespace chitty::log {
namespace {

int priority(Level l) {
  switch (l) {
    case Level::debug: return 7;
    case Level::info: return 6;
    case Level::warning: return 4;
    case Level::error: return 3;
    case Level::alert: return 1;
  }
  return 6;
}

}  // namespace

std::string journal_field_name(std::string_view key) {
  std::string name = "CHITTY_";
  for (char c : key) {
    if (c >= 'a' && c <= 'z') name += static_cast<char>(c - 32);
    else if ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) name += c;
    else name += '_';
  }
  // CHITTY_MODULE carries the topic; a field that maps onto it is renamed
  // rather than lost. journald drops names longer than 64 bytes.
  if (name == "CHITTY_MODULE") name = "CHITTY_FIELD_MODULE";
  if (name.size() > 64) name.resize(64);
  return name;
}

std::vector<std::string> journal_fields(const Record& r, std::string_view identifier) {
  std::vector<std::string> out;
  out.reserve(4 + r.fields.size());
  out.push_back("MESSAGE=" + std::string(r.message));
  out.push_back("PRIORITY=" + std::to_string(priority(r.level)));
  out.push_back("SYSLOG_IDENTIFIER=" + std::string(identifier));
  out.push_back("CHITTY_MODULE=" + std::string(r.topic));
  for (const auto& f : r.fields) {
    std::string line = journal_field_name(f.key);
    line += '=';
    append_value(line, f.value, ValueForm::plain);
    out.push_back(std::move(line));
  }
  return out;
}

bool stderr_is_journal() {
  const char* env = std::getenv("JOURNAL_STREAM");
  if (env == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(env, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void JournalSink::write(const Record& r) noexcept {
  try {
    std::vector<std::string> fields = journal_fields(r, identifier_);
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (auto& f : fields) iov.push_back(iovec{f.data(), f.size()});
    if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
      // journald is gone: stderr still reaches someone (or nobody).
      JsonLinesSink(2).write(r);
    }
  } catch (...) {
    // Out of memory while logging: drop the record.
  }
}

bool journal_send(const std::vector<std::string>& fields) noexcept {
  std::vector<iovec> iov;
  iov.reserve(fields.size());
  for (const auto& f : fields) iov.push_back({const_cast<char*>(f.data()), f.size()});
  return sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) >= 0;
}

}  // namespace chitty::log
