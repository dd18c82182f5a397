// The caller of one connection: its identity, established at accept, and the
// pidfd that keeps it honest afterwards.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "chitty/base/result.hpp"
#include "chitty/identity/identity.hpp"

namespace chitty::identity {

// SO_PEERCRED of a connected AF_UNIX stream socket: the peer's effective
// uid/gid and pid at connect() time (pid 0 when it lives in a PID namespace
// the agent cannot see).
struct Credentials {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;
};
[[nodiscard]] Result<Credentials> peer_credentials(int fd);

struct Options {
  // Use SO_PEERPIDFD where the kernel has it. Off forces the pidfd_open
  // fallback that Debian 12's kernel (6.1) needs; the environment variable
  // CHITTY_TEST_NO_SO_PEERPIDFD=1 turns it off too (for tests of that path).
  bool use_so_peerpidfd = true;
  // Where /proc is (tests may point elsewhere).
  std::string proc = "/proc";
};

// Options from the environment (CHITTY_TEST_NO_SO_PEERPIDFD).
Options options_from_environment();

class Peer {
 public:
  // Establishes the identity of the process behind connected socket `fd`,
  // whose SO_PEERCRED is `creds`. Never fails: what cannot be established is
  // recorded as unknown, with the reason.
  static Peer identify(int fd, const Credentials& creds, const Options& options);
  // A caller whose identity is given, not established: no socket, no pidfd;
  // current() returns `id` unchanged, and alive() says whether its pid is
  // known. It exists for tests and in-process callers (the API loopback,
  // tests/fakes/api_loopback.hpp). Nothing in production may use it for a
  // caller on a socket: it would bypass the pidfd re-check that withdraws
  // the facts of a process that has exited.
  static Peer fixed(Identity id);

  // An identity systemd's credential helper attests for a unit
  // (credential_identity(), load_credential.hpp): nothing in it derives from
  // a process the agent could re-check, so current() returns it unchanged.
  static Peer attested(Identity id);

  ~Peer();
  Peer(Peer&& o) noexcept;
  Peer& operator=(Peer&& o) noexcept;
  Peer(const Peer&) = delete;
  Peer& operator=(const Peer&) = delete;

  // As established at accept.
  const Identity& at_accept() const noexcept { return identity_; }
  // Re-checked now: if the process that connected has exited, every fact
  // derived from its pid becomes unknown (its pid may belong to another
  // process by now). Call before any answer that depends on the pid.
  Identity current() const;
  // The process that connected is still running (false if it was never known).
  bool alive() const;

 private:
  Peer() = default;
  Fact<std::string> read_exe(const std::string& dir);

  Identity identity_;
  int pidfd_ = -1;
  int proc_dir_ = -1;             // O_PATH fd of /proc/PID, for cheap re-checks
  std::uint64_t start_time_ = 0;  // /proc/PID/stat field 22 at accept
  dev_t exe_dev_ = 0;             // the executable's inode at accept
  ino_t exe_ino_ = 0;
  std::string proc_ = "/proc";
  bool fixed_ = false;  // Peer::fixed(): current() is identity_
};

// What a failed getsockopt(SO_PEERPIDFD) means: only a kernel without it
// (ENOPROTOOPT) may fall back to finding the process by pid; EINVAL/ESRCH
// (the peer was reaped, 6.5-6.15) mean the connecting process is gone.
enum class PeerPidfdFailure { fallback, exited, error };
PeerPidfdFailure classify_peerpidfd_error(int error) noexcept;

// Whether this process can read the executable of another user's process
// (/proc/PID/exe needs CAP_SYS_PTRACE in the effective set): without it, an
// `exe` selector matches only callers of the agent's own uid
// (docs/systemd.md, "Executable selectors").
bool can_read_other_users_exe();

// Marks every pid-derived fact of `id` unknown with `reason`.
void forget_process(Identity& id, const std::string& reason);

}  // namespace chitty::identity
