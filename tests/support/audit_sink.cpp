#include "audit_sink.hpp"

#include <cstdlib>
#include <stdexcept>
#include <thread>
#include <utility>

namespace chitty::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kAdminTimeout = std::chrono::seconds(10);

}  // namespace

std::string AuditSink::script() {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  if (root == nullptr || *root == '\0') {
    throw std::runtime_error("CHITTY_SOURCE_ROOT is not set (run the tests with meson test)");
  }
  return std::string(root) + "/tests/fakes/audit-sink/sink.js";
}

AuditSink::AuditSink(std::string token, int port)
    : token_(std::move(token)), store_path_(dir_ / "store.ndjson"), child_("audit sink", "sink", dir_.path()) {
  start(port);
}

AuditSink::~AuditSink() = default;

void AuditSink::start(int requested_port) {
  std::vector<std::string> args{"--host", "127.0.0.1", "--store", store_path_};
  if (!token_.empty()) {
    args.emplace_back("--token");
    args.push_back(token_);
  }
  child_.start(script(), args, requested_port);
}

std::string AuditSink::url() const { return "http://127.0.0.1:" + std::to_string(child_.port()) + "/ingest"; }

void AuditSink::restart() {
  int port = child_.port();
  child_.kill();
  start(port);
}

std::string AuditSink::admin_get(const std::string& target) {
  HttpReply r = http_request(child_.port(), "GET", target, "", {}, kAdminTimeout);
  if (r.status != 200)
    throw std::runtime_error("sink admin GET " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  return r.body;
}

std::string AuditSink::admin_post(const std::string& target, const std::string& json_body) {
  HttpReply r = http_request(child_.port(), "POST", target, json_body, {}, kAdminTimeout);
  if (r.status < 200 || r.status > 299) {
    throw std::runtime_error("sink admin POST " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  }
  return r.body;
}

void AuditSink::mode(const std::string& mode, int count, int delay_ms, int status) {
  std::string body = "{\"mode\":" + json_quote(mode);
  if (count > 0) body += ",\"count\":" + std::to_string(count);
  if (delay_ms > 0) body += ",\"delay_ms\":" + std::to_string(delay_ms);
  if (status > 0) body += ",\"status\":" + std::to_string(status);
  admin_post("/__sink/mode", body + "}");
}

std::string AuditSink::events_json() { return admin_get("/__sink/events"); }

std::string AuditSink::requests_json() { return admin_get("/__sink/requests"); }

void AuditSink::reset() { admin_post("/__sink/reset", "{}"); }

std::vector<std::string> AuditSink::event_ids() {
  // GET /__sink/ids: one id a line, with \\, \r and \n escaped.
  const std::string text = admin_get("/__sink/ids");
  std::vector<std::string> ids;
  std::string id;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ids.push_back(std::move(id));
      id.clear();
    } else if (c == '\\' && i + 1 < text.size()) {
      char e = text[++i];
      id += e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    } else {
      id += c;
    }
  }
  return ids;
}

bool AuditSink::wait_for_events(std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (event_ids().size() >= n) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

HttpReply AuditSink::post(const std::string& ndjson) { return post(ndjson, token_); }

HttpReply AuditSink::post(const std::string& ndjson, const std::string& token) {
  std::vector<std::string> headers;
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  return http_request(child_.port(), "POST", "/ingest", ndjson, headers, kAdminTimeout);
}

std::string AuditSink::store_text() const { return read_file(store_path_); }


}  // namespace chitty::testing
