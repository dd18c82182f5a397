// chittyctl run: the command's environment with its secret references
// resolved, the values given to the command only; its output masked.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <utility>

#include "chitty/base/fd.hpp"
#include "chitty/base/wipe.hpp"
#include "chitty/base/file.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/client/commands.hpp"
#include "chitty/client/env_file.hpp"
#include "chitty/client/masker.hpp"

extern char** environ;

namespace chitty::client {

namespace {

// The signals passed on to the command (when another process sent them to
// chittyctl: a terminal's ^C reaches the command by itself, as it is in the
// same process group).
constexpr int kForwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM};

struct Variable {
  std::string name;
  std::string value;       // the plain value, or the reference
  bool secret = false;
  std::size_t value_index = 0;  // into the resolved values, when secret
};

// The command's environment: ours, then each env file in order (a later
// definition wins).
Outcome<std::vector<Variable>> environment_of(const RunOptions& o) {
  std::vector<Variable> vars;
  std::map<std::string, std::size_t, std::less<>> index;
  auto set = [&](std::string name, std::string value) {
    if (auto it = index.find(name); it != index.end()) {
      vars[it->second].value = std::move(value);
      return;
    }
    index.emplace(name, vars.size());
    vars.push_back(Variable{std::move(name), std::move(value), false, 0});
  };
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    auto eq = kv.find('=');
    if (eq == std::string_view::npos || eq == 0) continue;
    set(std::string(kv.substr(0, eq)), std::string(kv.substr(eq + 1)));
  }
  for (const std::string& file : o.env_files) {
    FileRules rules;
    rules.max_bytes = 1u << 20;
    auto text = read_file(file, rules);
    if (!text) return failed(Exit::usage, text.error().message("env file " + file));
    auto entries = parse_env_file(*text, file);
    if (!entries) return failed(Exit::usage, entries.error().message);
    for (auto& en : *entries) set(std::move(en.name), std::move(en.value));
  }
  return vars;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// The program to start: a name with a slash as it is, else the first
// executable regular file of that name on the command's PATH (as execvp:
// one that is there but not executable is remembered, and reported as such
// when nothing else is found). Never the current directory unless PATH
// names it. "" and the errno when there is none.
std::pair<std::string, int> resolve_program(const std::string& name, const std::vector<Variable>& vars) {
  if (name.find('/') != std::string::npos) return {name, 0};
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& v : vars) {
    if (v.name == "PATH" && !v.secret) path = v.value;
  }
  int error = ENOENT;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find(':', start);
    if (end == std::string::npos) end = path.size();
    std::string dir = path.substr(start, end - start);
    if (dir.empty()) dir = ".";  // an empty PATH entry is the current directory, as for execvp
    std::string candidate = dir + "/" + name;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      if (::access(candidate.c_str(), X_OK) == 0) return {candidate, 0};
      error = EACCES;
    }
    start = end + 1;
  }
  return {"", error};
}

int cannot_start(const std::string& program, int error) {
  report(Failure{Exit::failure, "cannot run " + program + ": " + std::strerror(error), {}, {}, {}});
  return error == ENOENT ? 127 : 126;
}

// A stream of the command's output, masked onto one of ours.
struct Stream {
  UniqueFd read_end;
  int to = 1;
  bool open = true;
  bool broken = false;  // our end is gone: the command's output is dropped
  std::optional<Masker> masker;
};

// Reads what the command wrote and passes it on masked, in one write: the
// masked text holds no value, so it is gathered in ordinary memory.
void pump(Stream& s, secure::SecureBuffer& buffer) {
  ssize_t n = ::read(s.read_end.get(), buffer.data(), buffer.capacity());
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return;
  std::string out;
  auto gather = [&](std::span<const char> b) { out.append(b.data(), b.size()); };
  if (n <= 0) {
    s.open = false;
    if (!s.broken) {
      s.masker->finish(gather);
      (void)write_all(s.to, out);
    }
    s.read_end.reset();
    return;
  }
  if (s.broken) return;
  s.masker->feed({buffer.data(), static_cast<std::size_t>(n)}, gather);
  secure_zero(buffer.data(), static_cast<std::size_t>(n));
  if (!write_all(s.to, out)) {
    // Our reader went away: close the command's pipe as a pipeline would,
    // so that it gets SIGPIPE (or EPIPE) on its next write.
    s.broken = true;
    s.open = false;
    s.read_end.reset();
  }
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return static_cast<int>(Exit::failure);
}

int supervise(const std::string& program, char* const argv[], char* const envp[], secure::Arena& arena,
              const std::vector<std::span<const char>>& values) {
  int out[2], err[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return cannot_start(program, errno);
  Stream sout{UniqueFd(out[0]), 1, true, false, std::nullopt};
  UniqueFd out_w(out[1]);
  if (::pipe2(err, O_CLOEXEC) != 0) return cannot_start(program, errno);
  Stream serr{UniqueFd(err[0]), 2, true, false, std::nullopt};
  UniqueFd err_w(err[1]);
  for (Stream* s : {&sout, &serr}) {
    auto m = Masker::create(arena, values);
    if (!m) return report(Failure{Exit::failure, m.error().message, {}, {}, {}});
    s->masker.emplace(std::move(*m));
  }
  secure::SecureBuffer buffer = secure::SecureBuffer::allocate(arena, 16384);
  if (!buffer) return report(Failure{Exit::failure, "no locked memory to read the command's output", {}, {}, {}});

  // Signals: the forwarded ones (unless ignored when we started) and
  // SIGCHLD are read from a signalfd; the command starts with them at their
  // defaults and nothing blocked. SIGPIPE is ignored here (a closed output
  // is handled), default again for the command.
  sigset_t handled, old, defaults;
  sigemptyset(&handled);
  sigemptyset(&defaults);
  std::vector<int> forwarded;
  for (int sig : kForwarded) {
    struct sigaction now {};
    ::sigaction(sig, nullptr, &now);
    if (now.sa_handler == SIG_IGN) continue;
    forwarded.push_back(sig);
    sigaddset(&handled, sig);
    sigaddset(&defaults, sig);
  }
  sigaddset(&handled, SIGCHLD);
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGCHLD);
  ::signal(SIGPIPE, SIG_IGN);
  // SIGCHLD ignored (a supervisor may start us so) would have the kernel
  // reap the command, and its exit would never be seen.
  ::signal(SIGCHLD, SIG_DFL);
  ::sigprocmask(SIG_BLOCK, &handled, &old);
  UniqueFd sigfd(::signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!sigfd) return cannot_start(program, errno);

  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_w.get(), 1);
  posix_spawn_file_actions_adddup2(&actions, err_w.get(), 2);
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t child = -1;
  // posix_spawn shares our memory until the exec (CLONE_VM): the
  // environment it reads lies in the locked arena, which a fork would not
  // carry over (it is MADV_WIPEONFORK).
  int rc = ::posix_spawn(&child, program.c_str(), &actions, &attr, argv, envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  out_w.reset();
  err_w.reset();
  if (rc != 0) return cannot_start(program, rc);

  int status = 0;
  bool exited = false;
  for (;;) {
    pollfd fds[3];
    nfds_t n = 0;
    fds[n++] = pollfd{sigfd.get(), POLLIN, 0};
    Stream* streams[2] = {nullptr, nullptr};
    for (Stream* s : {&sout, &serr}) {
      if (!s->open) continue;
      streams[n - 1] = s;
      fds[n++] = pollfd{s->read_end.get(), POLLIN, 0};
    }
    if (exited && n == 1) break;
    // Once the command has exited, what it left running may hold the pipes
    // open: they are read while they deliver, and let go after a quiet 200 ms.
    int ready = ::poll(fds, n, exited ? 200 : -1);
    if (ready < 0 && errno == EINTR) continue;
    if (ready == 0) break;
    if ((fds[0].revents & POLLIN) != 0) {
      signalfd_siginfo si{};
      while (::read(sigfd.get(), &si, sizeof si) == static_cast<ssize_t>(sizeof si)) {
        int sig = static_cast<int>(si.ssi_signo);
        if (sig == SIGCHLD) continue;
        // Sent by a process (kill, a service manager): pass it on. Sent by the
        // kernel (the terminal's ^C, ^\): the command has it already.
        if (si.ssi_code <= 0 && !exited) ::kill(child, sig);
      }
      if (!exited) {
        pid_t w = ::waitpid(child, &status, WNOHANG);
        if (w == child) exited = true;
        if (w < 0 && errno == ECHILD) {  // reaped by someone else: its status is lost
          exited = true;
          status = static_cast<int>(Exit::failure) << 8;
        }
      }
    }
    for (nfds_t k = 1; k < n; ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0) pump(*streams[k - 1], buffer);
    }
  }
  for (Stream* s : {&sout, &serr}) {
    if (s->open && !s->broken) {
      std::string rest;
      s->masker->finish([&](std::span<const char> b) { rest.append(b.data(), b.size()); });
      (void)write_all(s->to, rest);
    }
  }
  if (!exited) {
    pid_t w;
    while ((w = ::waitpid(child, &status, 0)) < 0 && errno == EINTR) {
    }
    if (w < 0) status = static_cast<int>(Exit::failure) << 8;
  }
  ::sigprocmask(SIG_SETMASK, &old, nullptr);
  return exit_code_of(status);
}

}  // namespace

int run(Session& s, const RunOptions& o) {
  if (o.command.empty()) return report(Failure{Exit::usage, "run: no command given (chittyctl run -- CMD ARGS…)", {}, {}, {}});
  auto vars = environment_of(o);
  if (!vars) return report(vars.error());

  // Resolve every reference once, however many variables name it.
  std::vector<secure::SecureBuffer> values;
  std::map<std::string, std::size_t, std::less<>> by_ref;
  for (Variable& v : *vars) {
    if (!is_secret_reference(v.value)) continue;
    std::string ref(trimmed(v.value));
    if (auto parsed = catalog::parse_reference(ref); !parsed) {
      return report(Failure{Exit::usage, v.name + ": invalid reference: " + parsed.error().message, {}, {}, {}});
    }
    v.secret = true;
    if (auto it = by_ref.find(ref); it != by_ref.end()) {
      v.value_index = it->second;
      continue;
    }
    Wanted w;
    w.ref = ref;
    auto value = fetch_value(s.agent, s.arena, w, s.context);
    if (!value) {
      Failure f = value.error();
      f.message = v.name + " (" + ref + "): " + f.message;
      return report(f);
    }
    if (std::memchr(value->data(), '\0', value->size()) != nullptr) {
      return report(Failure{Exit::failure, v.name + " (" + ref +
                                               "): the value holds a NUL byte and cannot be passed in the environment",
                            {}, {}, {}});
    }
    v.value_index = values.size();
    by_ref.emplace(ref, values.size());
    values.push_back(std::move(*value));
  }

  // The command's environment: plain variables in ordinary memory, the
  // ones holding values in the arena ("NAME=value\0").
  std::vector<std::string> plain;
  std::vector<secure::SecureBuffer> secret;
  plain.reserve(vars->size());
  std::vector<char*> envp;
  for (const Variable& v : *vars) {
    if (!v.secret) {
      plain.push_back(v.name + "=" + v.value);
      continue;
    }
    const secure::SecureBuffer& val = values[v.value_index];
    secure::SecureBuffer entry = secure::SecureBuffer::allocate(s.arena, v.name.size() + val.size() + 2);
    if (!entry || !entry.append(v.name) || !entry.push_back('=') ||
        !entry.append(std::string_view(val.data(), val.size())) || !entry.push_back('\0')) {
      return report(Failure{Exit::failure, "no locked memory for the command's environment", {}, {}, {}});
    }
    secret.push_back(std::move(entry));
  }
  for (auto& p : plain) envp.push_back(p.data());
  for (auto& e : secret) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = o.command;
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  auto [program, missing] = resolve_program(o.command[0], *vars);
  if (program.empty()) return cannot_start(o.command[0], missing);
  s.agent.disconnect();

  if (!o.masking) {
    ::execve(program.c_str(), argv.data(), envp.data());
    return cannot_start(program, errno);
  }
  std::vector<std::span<const char>> spans;
  for (const auto& v : values) spans.emplace_back(v.data(), v.size());
  return supervise(program, argv.data(), envp.data(), s.arena, spans);
}

}  // namespace chitty::client
