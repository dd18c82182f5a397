// The 1Password Connect emulator (tests/fakes/connect-emulator/emulator.js)
// as a child process of an integration test, plus its admin API (faults,
// item mutations, the request log). See tests/fakes/connect-emulator/README.md
// for the fixture format and the admin JSON shapes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "node_child.hpp"
#include "temp_dir.hpp"

namespace chitty::testing {

struct HttpReply {
  int status = 0;
  std::string headers;  // the header lines after the status line, "\r\n"-separated
  std::string body;
};

// One blocking HTTP/1.1 request to 127.0.0.1:`port` with `Connection: close`
// and a Content-Length; reads the answer to EOF. `headers` are extra
// "Name: value" lines. Throws std::runtime_error when the connection fails,
// the answer is not HTTP, or `timeout` passes.
HttpReply http_request(int port, const std::string& method, const std::string& target, const std::string& body = "",
                       const std::vector<std::string>& headers = {},
                       std::chrono::milliseconds timeout = std::chrono::seconds(5));

class ConnectEmulator {
 public:
  // Starts `node emulator.js` with `fixtures_json` (written to a temp file) on
  // a free port, or on `port` if non-zero, and waits for its port file.
  // Throws std::runtime_error (with the emulator's log) on failure or timeout.
  // `extra_args` are passed to emulator.js (e.g. --tls-cert/--tls-key: the
  // admin helpers below speak plain http and do not work then).
  explicit ConnectEmulator(const std::string& fixtures_json, int port = 0, std::vector<std::string> extra_args = {});
  ~ConnectEmulator();  // SIGTERM, then SIGKILL after 3 s; reaps
  ConnectEmulator(const ConnectEmulator&) = delete;
  ConnectEmulator& operator=(const ConnectEmulator&) = delete;

  // $CHITTY_SOURCE_ROOT/tests/fakes/connect-emulator (throws if the variable is unset).
  static std::string directory();
  // The text of fixtures/chittyos.json.
  static std::string chittyos_fixtures();

  std::string url() const;  // "http://127.0.0.1:PORT" ("https://…" with --tls-cert)
  int port() const noexcept { return child_.port(); }
  pid_t pid() const noexcept { return child_.pid(); }
  bool running() { return child_.running(); }

  void kill() { child_.kill(); }  // SIGKILL now (an outage); reaps. The port stays reserved for restart().
  void restart();  // (kills if running, then) starts again on the same port with the same fixture file
  // SIGTERM and wait; true when it exited with status 0.
  bool stop(std::chrono::milliseconds timeout = std::chrono::seconds(5)) { return child_.stop(timeout); }

  // POST `json_body` to /__emulator/<path> (or to `path` itself if it starts
  // with '/'); returns the response body, throws on a non-2xx answer.
  std::string admin(const std::string& path, const std::string& json_body = "{}");
  std::string requests_json();  // GET /__emulator/requests
  void reset();                 // POST /__emulator/reset (request log and faults)
  // POST /__emulator/faults. count <= 0: until cleared; delay_ms < 0: the
  // emulator's default (1000 ms for "slow", else 0); "" prefix: every path.
  void fault(const std::string& mode, int count = 0, const std::string& path_prefix = "", int delay_ms = -1);
  void clear_faults() { fault("none"); }

  // A request to the emulated Connect API; adds `Authorization: Bearer
  // <token>` unless `token` is empty.
  HttpReply request(const std::string& method, const std::string& target, const std::string& token = "good-token",
                    const std::string& body = "");
  HttpReply get(const std::string& target, const std::string& token = "good-token") {
    return request("GET", target, token);
  }

  std::string log() const { return child_.log(); }  // the emulator's stderr (all runs)
  const std::string& fixtures_path() const noexcept { return fixtures_path_; }
  const TempDir& dir() const noexcept { return dir_; }

 private:
  void start(int requested_port);

  TempDir dir_;
  std::string fixtures_path_;
  std::vector<std::string> extra_args_;
  NodeChild child_;
};

// `s` as a JSON string literal, quotes included.
std::string json_quote(const std::string& s);

}  // namespace chitty::testing
