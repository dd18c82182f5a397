// One connection of systemd's credential helper (LoadCredential=, docs/systemd.md):
// no HTTP. The helper has shut its write side down as soon as it connected;
// once its end of input arrives, the request (the unit and credential ID its
// address names) goes to the server's credential handler as a Call, and the
// answer is written as the credential itself: a 200's body, raw, then a
// clean close. Any other answer — and a peer that sends a byte, or no end
// of input within kEndOfInputWait — gets an unusable credential instead
// (poison()): on a Unix socket a close is always a clean end of file, which
// systemd would take for an empty credential and start the unit with.
//
// Lifetime as Connection's: owned by the Server, freed from its pipe's close
// callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <string>

#include "chitty/http/response.hpp"
#include "chitty/identity/load_credential.hpp"
#include "chitty/identity/peer.hpp"
#include "chitty/loop/handle.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/server/call.hpp"

namespace chitty::server {

class Server;

class CredentialConnection final : public Responder {
 public:
  // How long the helper may take to shut its write side down.
  static constexpr std::chrono::milliseconds kEndOfInputWait{2000};
  // What a refusal writes: more than any systemd reads as a credential
  // (CREDENTIAL_SIZE_MAX is 1 MiB, and read_full_file() gives up at 4 MiB
  // whatever the limit), so the helper fails with E2BIG and the unit does
  // not start. The helper hangs up after 1 MiB + 1 byte.
  static constexpr std::size_t kPoisonBytes = 4 * 1024 * 1024 + 1;
  // How long systemd's helper may take to read what is written to it. A
  // close before it has read everything would hand it a clean end of file
  // after a cut value or a short poison, which it would take for the
  // credential; the real helper reads at once, so this only bounds one that
  // was stopped. (Other peers get agent.write_timeout.)
  static constexpr std::chrono::seconds kHelperWriteTimeout{60};

  // `uid`: the peer's, for the per-uid cap. `refusal`: why the peer may not
  // ask (empty when it may); `trusted`: the peer is systemd's helper.
  CredentialConnection(Server& server, loop::Handle<uv_pipe_t> pipe, std::shared_ptr<const identity::Peer> peer,
                       uid_t uid, identity::CredentialRequest request, std::string refusal, bool trusted,
                       std::uint64_t id);
  ~CredentialConnection() override;
  CredentialConnection(const CredentialConnection&) = delete;
  CredentialConnection& operator=(const CredentialConnection&) = delete;

  void start();
  // Shutdown: a request not yet handed over is refused (poisoned); one in
  // flight is answered.
  void drain();
  // The shutdown deadline: a request not answered yet is refused now; what
  // is being written is finished — or, with `force` (a second stop signal),
  // cut off (systemd may then read a clean end of file: docs/systemd.md).
  void give_up(bool force);
  void close(std::string_view reason);
  void orphan();

  // Responder
  void respond(std::uint64_t seq, http::Response response) override;
  void expect_sensitive(std::uint64_t) override {}

  uid_t uid() const noexcept { return uid_; }
  std::uint64_t id() const noexcept { return id_; }

 private:
  struct WriteOp;
  enum class State { waiting, asked, writing };

  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  void read(ssize_t nread, const uv_buf_t* buf);
  // Hands the request to the server's handler (with `refusal`, if any).
  void ask(std::string refusal);
  // Writes `body` (a credential), or the poison when it is null; closes when written.
  void write(std::unique_ptr<http::Payload> body);
  void poison(std::string_view why);
  void on_timer();

  Server* server_;  // nullptr once orphaned
  loop::Handle<uv_pipe_t> pipe_;
  std::shared_ptr<const identity::Peer> peer_;
  uid_t uid_;
  identity::CredentialRequest request_;
  std::string refusal_;
  bool trusted_;
  std::uint64_t id_;
  loop::Timer timer_;
  std::shared_ptr<CallLink> link_;
  State state_ = State::waiting;
  bool reading_ = false;
  bool closing_ = false;
};

}  // namespace chitty::server
