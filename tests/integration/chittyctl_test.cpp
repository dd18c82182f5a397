// chittyctl against the real agent: every subcommand, its output and exit
// codes; run's environment, masking (values split across writes, in
// stderr), exit codes and signals; inject's escaping, file mode and
// atomicity; usage errors.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "json_checks.hpp"
#include "json_reader.hpp"
#include "memory_scan.hpp"
#include "process.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::CommandResult;
using chitty::testing::Json;
using chitty::testing::TempDir;

namespace {

const std::string kValue = "sk-test-0123456789abcdef01234567";  // 32 characters
const std::string kOther = "chittyid-secret-value-9876";
const std::string kRef = "op://ChittyOS Integrations/OpenAI API/api_key";

std::string ctl() {
  const char* bin = std::getenv("CHITTYCTL_BIN");
  REQUIRE(bin != nullptr);  // set by meson
  return bin;
}

// An agent with two env-backed credentials, a service for this uid (admin,
// 1000 requests an hour or `rate`), a second type it may not read, an
// emergency token and a fixed chain key.
struct Agent {
  TempDir dir;
  std::unique_ptr<AgentProcess> process;
  explicit Agent(const std::string& rate = "1000/h", const std::string& more = "") {
    dir.write("emergency.token", "emergency-token-0123456789\n", 0600);
    dir.write("chain.key", "test-chain-key-0123456789abcdef0123456789abcdef\n", 0600);
    dir.write("step-up.token", "step-up-token-abcdef\n", 0600);
    AgentSpec spec;
    spec.rest = "[audit]\nchain_key_file = \"" + (dir / "chain.key") +
                "\"\nfsync_interval = \"20ms\"\n"
                "[emergency]\ntoken_file = \"" + (dir / "emergency.token") + "\"\n"
                "[[credential]]\ntype = \"openai_api_key\"\nref = \"" + kRef + "\"\nenv = \"OPENAI_API_KEY\"\n"
                "[[credential]]\ntype = \"chittyid_service_token\"\n"
                "ref = \"op://ChittyOS Services/ChittyID Service Token/service_token\"\nenv = \"CHITTY_ID_TOKEN\"\n"
                "category = \"service\"\ntarget = \"chittyid\"\n"
                "[[credential]]\ntype = \"neon_database_url\"\nref = \"op://ChittyOS Infrastructure/Neon PostgreSQL/database_url\"\n"
                "env = \"NEON_DATABASE_URL\"\n"
                "[[service]]\nname = \"me\"\nuid = " + std::to_string(geteuid()) +
                "\nallow = [\"type:openai_api_key\", \"type:chittyid_service_token\"]\nrate_limit = \"" + rate +
                "\"\nadmin = true\nstep_up_token_file = \"" + (dir / "step-up.token") + "\"\n" + more;
    spec.env = {"OPENAI_API_KEY=" + kValue, "CHITTY_ID_TOKEN=" + kOther, "NEON_DATABASE_URL=postgres://x"};
    process = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(process->wait_ready());
  }
  const std::string& socket() const { return process->socket(); }
  // chittyctl --socket SOCKET ARGS…
  CommandResult ctl(std::vector<std::string> args, std::vector<std::string> env = {}) const {
    std::vector<std::string> argv{"env"};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.push_back(::ctl());
    argv.push_back("--socket");
    argv.push_back(socket());
    argv.insert(argv.end(), args.begin(), args.end());
    return chitty::testing::run(argv);
  }
  // A shell script with $CTL set to `chittyctl --socket SOCKET`.
  CommandResult sh(const std::string& script, std::vector<std::string> env = {}) const {
    std::vector<std::string> argv{"env", "CTL=" + ::ctl() + " --socket " + socket()};
    argv.insert(argv.end(), env.begin(), env.end());
    argv.insert(argv.end(), {"sh", "-c", script});
    return chitty::testing::run(argv);
  }
};

}  // namespace

TEST_CASE("chittyctl get: the value, --json, --type, -n; every failure with its exit code", "[integration][chittyctl]") {
  Agent a;
  auto r = a.ctl({"get", kRef});
  CHECK(r.exit_code == 0);
  CHECK(r.out == kValue + "\n");
  CHECK(r.err.empty());
  r = a.ctl({"get", "-n", "--type", "openai_api_key"});
  CHECK(r.out == kValue);
  r = a.ctl({"get", "--json", "--type", "chittyid_service_token"});
  CHECK(r.exit_code == 0);
  Json answer = chitty::testing::parse(r.out);
  CHECK(chitty::testing::at(chitty::testing::at(answer, "credential"), "value").text == kOther);
  CHECK(chitty::testing::at(chitty::testing::at(answer, "metadata"), "risk_level").type == Json::Type::string);
  // The socket from the environment.
  r = chitty::testing::run({"env", "CHITTY_AGENT_SOCKET=" + a.socket(), ctl(), "get", kRef});
  CHECK(r.out == kValue + "\n");

  SECTION("denied: exit 4 with the agent's reason") {
    r = a.ctl({"get", "--type", "neon_database_url"});
    CHECK(r.exit_code == 4);
    CHECK(r.out.empty());
    CHECK(r.err.find("chittyctl: denied (forbidden): service \"me\" may not read") == 0);
  }
  SECTION("unknown type: exit 7") {
    r = a.ctl({"get", "--type", "no_such_type"});
    CHECK(r.exit_code == 7);
    CHECK(r.err.find("chittyctl: not found: ") == 0);
  }
  SECTION("an invalid reference is a usage error, never sent") {
    r = a.ctl({"get", "op://only/two"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("chittyctl: invalid reference: ") == 0);
  }
  SECTION("started with standard output closed: the value goes nowhere (fd 1 is /dev/null, not the arena)") {
    r = a.sh("$CTL get '" + kRef + "' >&-; echo rc=$? >&2");
    CHECK(r.err == "rc=0\n");
    CHECK(r.out.empty());
  }
  SECTION("context mismatch in purpose: the service lists none, any purpose goes") {
    r = a.ctl({"--purpose", "api-call", "get", kRef});
    CHECK(r.exit_code == 0);
  }
}

TEST_CASE("chittyctl: no agent, no permission, rate limited", "[integration][chittyctl]") {
  TempDir dir;
  auto r = chitty::testing::run({ctl(), "--socket", dir / "none.sock", "get", kRef});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("the agent is not running: there is no socket at " + (dir / "none.sock")) != std::string::npos);
  // A socket file nobody listens on (an agent that was killed).
  r = chitty::testing::run({"python3", "-c",
                            "import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1])", dir / "dead.sock"});
  REQUIRE(r.exit_code == 0);
  r = chitty::testing::run({ctl(), "--socket", dir / "dead.sock", "health"});
  CHECK(r.exit_code == 3);
  CHECK(r.err.find("nothing listens on") != std::string::npos);

  Agent a("2/h");
  if (geteuid() == 0) {
    // The agent's socket is 0660 root:root here: another uid may not connect.
    ::chmod(a.dir.path().c_str(), 0755);
    r = chitty::testing::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", ctl(), "--socket",
                              a.socket(), "health"});
    CHECK(r.exit_code == 3);
    CHECK(r.err.find("no permission to connect to the agent's socket " + a.socket()) != std::string::npos);
    CHECK(r.err.find("mode 0") != std::string::npos);
  }
  CHECK(a.ctl({"get", kRef}).exit_code == 0);
  CHECK(a.ctl({"get", kRef}).exit_code == 0);
  r = a.ctl({"get", kRef});
  CHECK(r.exit_code == 6);
  CHECK(r.err.find("chittyctl: rate limited: ") == 0);
  CHECK(r.err.find("(retry in ") != std::string::npos);
}

TEST_CASE("chittyctl usage errors exit 2", "[integration][chittyctl]") {
  for (std::vector<std::string> args : std::vector<std::vector<std::string>>{
           {},
           {"bogus"},
           {"get"},
           {"get", kRef, "--type", "x"},
           {"get", "--nope"},
           {"insights"},
           {"audit"},
           {"audit", "verify", "x"},
           {"--timeout", "soon", "health"},
           {"health", "--", "x"},
           {"run"},
           {"inject", "--file-mode", "0644"},
           {"--step-up-file", "/etc/hostname", "mcp"},
       }) {
    std::vector<std::string> argv{ctl(), "--socket", "/nonexistent/agent.sock"};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = chitty::testing::run(argv);
    INFO(r.err);
    CHECK(r.exit_code == 2);
    CHECK_FALSE(r.err.empty());
  }
  auto help = chitty::testing::run({ctl(), "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("inject") != std::string::npos);
  auto version = chitty::testing::run({ctl(), "--version"});
  CHECK(version.exit_code == 0);
  CHECK(version.out.find("chittyctl ") == 0);
}

TEST_CASE("chittyctl health and insights", "[integration][chittyctl]") {
  Agent a;
  auto r = a.ctl({"health"});
  CHECK(r.exit_code == 0);
  CHECK(chitty::testing::at(chitty::testing::parse(r.out), "status").text == "healthy");
  REQUIRE(a.ctl({"get", kRef}).exit_code == 0);
  r = a.ctl({"insights", "me"});
  CHECK(r.exit_code == 0);
  Json insights = chitty::testing::parse(r.out);
  CHECK(chitty::testing::at(insights, "service").text == "me");
}

TEST_CASE("chittyctl revoke: token from a file or a credential, never argv; --clear", "[integration][chittyctl]") {
  Agent a;
  auto r = a.ctl({"revoke", "--type", "openai_api_key", "--reason", "leaked", "--token-file", a.dir / "emergency.token"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  r = a.ctl({"get", kRef});
  CHECK(r.exit_code == 4);
  CHECK(r.err.find("chittyctl: denied (revoked): ") == 0);
  // The token as a systemd credential.
  std::filesystem::create_directory(a.dir / "creds");
  a.dir.write("creds/emergency-token", "emergency-token-0123456789", 0400);
  r = a.ctl({"revoke", "--clear", "--type", "openai_api_key", "--token-credential", "emergency-token"},
            {"CREDENTIALS_DIRECTORY=" + (a.dir / "creds")});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  // Lifted; a reference revoked a moment ago scores high enough to need the
  // service's step-up token (docs/risk.md): exit 5, and how to give it.
  r = a.ctl({"get", kRef});
  CHECK(r.exit_code == 5);
  CHECK(r.err.find("chittyctl: step-up required: ") == 0);
  CHECK(r.err.find("--step-up-file FILE") != std::string::npos);
  r = a.ctl({"--step-up-file", a.dir / "step-up.token", "get", kRef});
  INFO(r.err);
  CHECK(r.out == kValue + "\n");

  SECTION("a wrong token: exit 4, unauthenticated") {
    a.dir.write("wrong.token", "not-the-token", 0600);
    r = a.ctl({"revoke", "--all", "--token-file", a.dir / "wrong.token"});
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("denied (unauthenticated)") != std::string::npos);
  }
  SECTION("a token file others may read is refused before anything is sent") {
    a.dir.write("open.token", "emergency-token-0123456789", 0644);
    r = a.ctl({"revoke", "--all", "--token-file", a.dir / "open.token"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("chmod 0600") != std::string::npos);
  }
  SECTION("no token and no terminal: a usage error naming the ways to give one") {
    r = chitty::testing::run({"setsid", "-w", ctl(), "--socket", a.socket(), "revoke", "--all"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("--token-file") != std::string::npos);
  }
  SECTION("the token typed on a terminal, not echoed") {
    r = a.sh("(sleep 1; printf 'emergency-token-0123456789\\n') | script -qec \"$CTL revoke --type openai_api_key "
             "--reason typed\" /dev/null");
    INFO(r.out << r.err);
    CHECK(r.out.find("Emergency token: ") != std::string::npos);
    CHECK(r.out.find("emergency-token-0123456789") == std::string::npos);
    CHECK(r.out.find("\"success\": true") != std::string::npos);  // (indented: the output is a terminal)
    CHECK(a.ctl({"get", kRef}).exit_code == 4);
  }
  SECTION("what to revoke must be said one way") {
    r = a.ctl({"revoke", kRef, "--all", "--token-file", a.dir / "emergency.token"});
    CHECK(r.exit_code == 2);
  }
}

TEST_CASE("chittyctl audit: tail, query, follow, verify", "[integration][chittyctl]") {
  Agent a;
  for (int i = 0; i < 3; ++i) REQUIRE(a.ctl({"get", kRef}).exit_code == 0);
  auto r = a.ctl({"audit", "tail", "-n", "2"});
  CHECK(r.exit_code == 0);
  std::vector<std::string> lines;
  for (std::size_t p = 0, nl; (nl = r.out.find('\n', p)) != std::string::npos; p = nl + 1) {
    lines.push_back(r.out.substr(p, nl - p));
  }
  REQUIRE(lines.size() == 2);
  for (const auto& l : lines) {
    Json e = chitty::testing::parse(l);
    CHECK(chitty::testing::at(e, "kind").type == Json::Type::string);
  }
  CHECK(r.out.find(kValue) == std::string::npos);
  r = a.ctl({"audit", "query", "--service", "me", "--since", "1h", "--limit", "10"});
  CHECK(r.exit_code == 0);
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') >= 3);
  CHECK(r.out.find("\"service\":\"me\"") != std::string::npos);
  r = a.ctl({"audit", "query", "--since", "yesterday"});
  CHECK(r.exit_code == 2);

  // Following: an event made after the tail started shows up once.
  std::thread later([&] {
    std::this_thread::sleep_for(1500ms);
    a.ctl({"get", "--type", "chittyid_service_token"});
  });
  r = chitty::testing::run({"timeout", "4", ctl(), "--socket", a.socket(), "audit", "tail", "-f", "-n", "1",
                            "--interval", "200ms"});
  later.join();
  CHECK(r.exit_code == 124);  // stopped by timeout
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') >= 2);
  CHECK(r.out.find("chittyid_service_token") != std::string::npos);
  std::set<std::string> ids;
  for (std::size_t p = 0, nl; (nl = r.out.find('\n', p)) != std::string::npos; p = nl + 1) {
    CHECK(ids.insert(chitty::testing::at(chitty::testing::parse(r.out.substr(p, nl - p)), "id").text).second);
  }

  // verify: the spool, then a tampered export.
  std::this_thread::sleep_for(100ms);
  r = chitty::testing::run({ctl(), "audit", "verify", a.dir / "state/audit", "--chain-key", a.dir / "chain.key"});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  auto all = a.ctl({"audit", "query", "--limit", "1000"});
  std::string exported = all.out;
  (void)exported;
  r = a.sh("cat " + a.dir.path() + "/state/audit/*.log 2>/dev/null | sed 's/\"decision\":\"allow\"/\"decision\":\"deny\"/' | " +
           ctl() + " audit verify - --chain-key " + (a.dir / "chain.key"));
  CHECK(r.exit_code == 1);
}

TEST_CASE("chittyctl run: values to the command only, masked output, exit codes", "[integration][chittyctl]") {
  Agent a;
  const std::string env_ref = "OPENAI_API_KEY=" + kRef;
  // The value reaches the command's environment; its output is masked, on
  // stdout and stderr, also when a value is written in two pieces.
  auto r = a.sh(
      "$CTL run -- sh -c '"
      "test \"$OPENAI_API_KEY\" = \"" + kValue + "\" || exit 99; "
      "echo \"out $OPENAI_API_KEY\"; echo \"err $OPENAI_API_KEY\" >&2; "
      "printf \"split %s\" \"$(printf %s \"$OPENAI_API_KEY\" | cut -c1-10)\"; sleep 0.3; "
      "printf \"%s done\\n\" \"$(printf %s \"$OPENAI_API_KEY\" | cut -c11-)\"; exit 7'",
      {env_ref});
  INFO(r.err);
  CHECK(r.exit_code == 7);
  CHECK(r.out == "out <concealed by chitty>\nsplit <concealed by chitty> done\n");
  CHECK(r.err == "err <concealed by chitty>\n");

  SECTION("env files: references and plain values; a later file wins") {
    a.dir.write("one.env", "TOKEN=\"" + std::string("op://ChittyOS Services/ChittyID Service Token/service_token") +
                               "\"\nPLAIN=one\n# comment\nexport LATER=first\n");
    a.dir.write("two.env", "LATER=second\n");
    r = a.ctl({"run", "--env-file", a.dir / "one.env", "--env-file", a.dir / "two.env", "--", "sh", "-c",
               "echo $PLAIN $LATER; test \"$TOKEN\" = \"" + kOther + "\" && echo ok $TOKEN"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "one second\nok <concealed by chitty>\n");
  }
  SECTION("--no-masking execs the command: the value is its to print") {
    r = a.sh("$CTL run --no-masking -- sh -c 'echo $OPENAI_API_KEY'", {env_ref});
    CHECK(r.exit_code == 0);
    CHECK(r.out == kValue + "\n");
  }
  SECTION("a reference that is refused stops before the command starts, naming the variable") {
    r = a.sh("$CTL run -- sh -c 'touch " + (a.dir / "started") + "'",
             {"DB_URL=op://ChittyOS Infrastructure/Neon PostgreSQL/database_url"});
    CHECK(r.exit_code == 4);
    CHECK(r.err.find("chittyctl: DB_URL (op://ChittyOS Infrastructure/Neon PostgreSQL/database_url): denied") == 0);
    CHECK_FALSE(std::filesystem::exists(a.dir / "started"));
    r = a.sh("$CTL run -- true", {"BAD=op://nope"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("BAD: invalid reference") != std::string::npos);
  }
  SECTION("the command inherits no connection to the agent (or any other descriptor of chittyctl's)") {
    a.dir.write("empty.env", "");
    for (std::string mode : {std::string("--no-masking"), "--env-file=" + (a.dir / "empty.env")}) {
      r = a.sh("$CTL run " + mode + " -- sh -c 'ls -l /proc/$$/fd | grep -c socket; ls /proc/$$/fd | wc -l'", {env_ref});
      INFO(mode);
      CHECK(r.exit_code == 0);
      // No socket, and as many descriptors as the same command started
      // without chittyctl has.
      auto plain = a.sh("sh -c 'ls -l /proc/$$/fd | grep -c socket; ls /proc/$$/fd | wc -l'");
      CHECK(r.out == plain.out);
      CHECK(r.out.rfind("0\n", 0) == 0);
    }
  }
  SECTION("a command that cannot start: 127") {
    r = a.ctl({"run", "--", "no-such-command-here"});
    CHECK(r.exit_code == 127);
    CHECK(r.err.find("cannot run no-such-command-here") != std::string::npos);
  }
  SECTION("a program in the current directory that is not on PATH is not run (found by review)") {
    a.dir.write("planted", "#!/bin/sh\necho planted ran with $OPENAI_API_KEY\n", 0755);
    for (std::string mode : {"--no-masking", ""}) {
      r = a.sh("cd " + a.dir.path() + " && $CTL run " + mode + " -- planted", {env_ref});
      CHECK(r.exit_code == 127);
      CHECK(r.out.empty());
    }
    // Named with a slash, it is the user's choice.
    r = a.sh("cd " + a.dir.path() + " && $CTL run -- ./planted", {env_ref});
    CHECK(r.out == "planted ran with <concealed by chitty>\n");
  }
  SECTION("started with SIGCHLD ignored (some supervisors do), the command's status still comes back") {
    r = a.sh("exec python3 -c 'import os,signal,sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
             "os.execvp(sys.argv[1], sys.argv[1:])' $CTL run -- sh -c 'echo hi; exit 3'",
             {env_ref});
    CHECK(r.exit_code == 3);
    CHECK(r.out == "hi\n");
  }
  SECTION("a command killed by a signal: 128 + the signal") {
    r = a.ctl({"run", "--", "sh", "-c", "kill -KILL $$"});
    CHECK(r.exit_code == 137);
  }
  SECTION("signals sent to chittyctl reach the command; its exit code comes back") {
    r = a.sh("$CTL run -- sh -c 'trap \"echo got TERM; exit 42\" TERM; echo ready; while :; do sleep 0.05; done' & "
             "pid=$!; sleep 1; kill -TERM $pid; wait $pid; echo rc=$?",
             {env_ref});
    CHECK(r.out == "ready\ngot TERM\nrc=42\n");
    r = a.sh("$CTL run -- sh -c 'trap \"echo got USR1\" USR1; echo ready; i=0; while [ $i -lt 40 ]; do sleep 0.05; "
             "i=$((i+1)); done; exit 3' & pid=$!; sleep 1; kill -USR1 $pid; wait $pid; echo rc=$?");
    CHECK(r.out == "ready\ngot USR1\nrc=3\n");
  }
  SECTION("a reader that goes away ends the command as a pipeline would") {
    r = a.sh("$CTL run -- sh -c 'yes $OPENAI_API_KEY' | head -n 2; echo rc=${PIPESTATUS:-done}", {env_ref});
    CHECK(r.out.find("<concealed by chitty>\n<concealed by chitty>\n") == 0);
    CHECK(r.out.find(kValue) == std::string::npos);
  }
}

TEST_CASE("chittyctl inject: rendering, escaping, file mode and atomicity", "[integration][chittyctl]") {
  Agent a;
  a.dir.write("t.tmpl",
              "key={{ " + kRef + " }}\n"
              "id={{op://${VAULT:-ChittyOS Services}/ChittyID Service Token/service_token}}\n"
              "literal={{ \"{{ not a ref }}\" }} and }} and op://left/as/is\n");
  auto r = a.ctl({"inject", "-i", a.dir / "t.tmpl"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  const std::string rendered =
      "key=" + kValue + "\nid=" + kOther + "\nliteral={{ not a ref }} and }} and op://left/as/is\n";
  CHECK(r.out == rendered);

  // To a file: mode 0600 whatever the umask, replacing an older file, no
  // temporary left behind.
  a.dir.write("out.conf", "old content\n", 0644);
  r = a.sh("umask 000; $CTL inject -i " + (a.dir / "t.tmpl") + " -o " + (a.dir / "out.conf"));
  INFO(r.err);
  CHECK(r.exit_code == 0);
  struct stat st {};
  REQUIRE(::stat((a.dir / "out.conf").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(chitty::testing::read_file(a.dir / "out.conf") == rendered);
  for (const auto& e : std::filesystem::directory_iterator(a.dir.path())) {
    CHECK(e.path().filename().string().find(".chittyctl-") == std::string::npos);
  }
  // From standard input, with --file-mode.
  r = a.sh("printf 'x={{ op://ChittyOS Integrations/OpenAI API/api_key }}' | $CTL inject --file-mode 0640 -o " +
           (a.dir / "stdin.conf"));
  CHECK(r.exit_code == 0);
  REQUIRE(::stat((a.dir / "stdin.conf").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(chitty::testing::read_file(a.dir / "stdin.conf") == "x=" + kValue);

  SECTION("a template error: file:line:column, exit 2, the output untouched") {
    a.dir.write("bad.tmpl", "ok\n  {{ nope }}\n");
    r = a.ctl({"inject", "-i", a.dir / "bad.tmpl", "-o", a.dir / "out.conf"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("chittyctl: " + (a.dir / "bad.tmpl") + ":2:6: expected an op:// reference") == 0);
    CHECK(chitty::testing::read_file(a.dir / "out.conf") == rendered);
  }
  SECTION("a refused reference: nothing written, the old file kept") {
    a.dir.write("denied.tmpl", "a={{ " + kRef + " }}\nb={{ op://ChittyOS Infrastructure/Neon PostgreSQL/database_url }}\n");
    r = a.ctl({"inject", "-i", a.dir / "denied.tmpl", "-o", a.dir / "out.conf"});
    CHECK(r.exit_code == 4);
    CHECK(r.err.find(":2:6: op://ChittyOS Infrastructure/Neon PostgreSQL/database_url: denied (forbidden)") !=
          std::string::npos);
    CHECK(chitty::testing::read_file(a.dir / "out.conf") == rendered);
    r = a.ctl({"inject", "-i", a.dir / "denied.tmpl"});
    CHECK(r.out.empty());
  }
  SECTION("an output that is a symbolic link is refused, the link and its target untouched") {
    a.dir.write("real.conf", "real\n");
    REQUIRE(::symlink((a.dir / "real.conf").c_str(), (a.dir / "link.conf").c_str()) == 0);
    r = a.ctl({"inject", "-i", a.dir / "t.tmpl", "-o", a.dir / "link.conf"});
    CHECK(r.exit_code == 2);
    CHECK(r.err.find("is a symbolic link") != std::string::npos);
    CHECK(chitty::testing::read_file(a.dir / "real.conf") == "real\n");
    CHECK(std::filesystem::is_symlink(a.dir / "link.conf"));
  }
  SECTION("an output that is a directory is refused") {
    r = a.ctl({"inject", "-i", a.dir / "t.tmpl", "-o", a.dir.path()});
    CHECK(r.exit_code == 2);
  }
}

TEST_CASE("chittyctl over the MCP channel: the agent withholds values unless mcp_release", "[integration][chittyctl]") {
  // The channel is the agent's decision: a curl that says X-Chitty-Channel:
  // mcp gets the masked form only, and GET /v1/secret refuses it.
  Agent a;
  auto r = chitty::testing::curl(a.socket(), "/api/onepassword/retrieve",
                                 {"-H", "X-Chitty-Channel: mcp", "-d", R"({"credential_type":"openai_api_key"})"});
  CHECK(r.out.find("HTTP/1.1 200") == 0);
  CHECK(r.out.find(kValue) == std::string::npos);
  CHECK(r.out.find(R"("value":null,"withheld":true,"masked_value":"…4567")") != std::string::npos);
  r = chitty::testing::curl(a.socket(), "/v1/secret?ref=op://ChittyOS%20Integrations/OpenAI%20API/api_key",
                            {"-H", "X-Chitty-Channel: mcp"});
  CHECK(r.out.find("HTTP/1.1 403") == 0);
  CHECK(r.out.find(kValue) == std::string::npos);
  r = chitty::testing::curl(a.socket(), "/api/onepassword/batch-retrieve",
                            {"-H", "X-Chitty-Channel: mcp", "-d",
                             R"({"requests":[{"credential_type":"openai_api_key"},{"credential_type":"chittyid_service_token"}]})"});
  CHECK(r.out.find("HTTP/1.1 200") == 0);
  CHECK(r.out.find(kValue) == std::string::npos);
  CHECK(r.out.find(kOther) == std::string::npos);
  auto events = a.ctl({"audit", "tail", "-n", "10"});
  CHECK(events.out.find(R"("channel":"mcp","withheld":true)") != std::string::npos);
  // chittyctl get over the channel would be refused its value the same way:
  // it never asks that way, but the agent is what decides.
}

TEST_CASE("chittyctl's memory holds no readable copy of a value: run (locked arena), mcp (never received)",
          "[integration][chittyctl][memory]") {
  if (geteuid() != 0) {
    WARN("skipped: reading a non-dumpable process's memory needs root");
    return;
  }
  Agent a;
  const std::string env_ref = "OPENAI_API_KEY=" + kRef;
  // The command writes chittyctl's pid (its parent) and waits; meanwhile
  // chittyctl holds the value (to mask) and the command's environment.
  for (bool mlock : {false, true}) {
    INFO("mlock path (Debian 12's stock kernel, no memfd_secret): " << mlock);
    std::string pidfile = a.dir / ("ctl.pid." + std::to_string(mlock));
    std::vector<std::string> env{env_ref};
    if (mlock) env.push_back("CHITTY_TEST_NO_MEMFD_SECRET=1");
    CommandResult r;
    std::thread run([&] {
      r = a.sh("$CTL run -- sh -c 'echo $PPID > " + pidfile + "; echo \"$OPENAI_API_KEY\"; sleep 2'", env);
    });
    pid_t pid = 0;
    for (int i = 0; i < 300 && pid == 0; ++i) {
      std::this_thread::sleep_for(10ms);
      std::ifstream in(pidfile);
      in >> pid;
    }
    REQUIRE(pid > 0);
    std::this_thread::sleep_for(200ms);
    std::string maps = chitty::testing::read_file("/proc/" + std::to_string(pid) + "/maps");
    chitty::testing::Scan scan = chitty::testing::scan_memory(pid, {kValue});
    run.join();
    CHECK(r.exit_code == 0);
    CHECK(r.out == "<concealed by chitty>\n");
    CHECK(scan.bytes_read > 100000);
    if (!mlock) {
      // The arena is memfd_secret: not even root reads it through /proc/PID/mem.
      CHECK(maps.find("secretmem") != std::string::npos);
      CHECK(scan.hits.at(0) == 0);
    } else {
      // The mlock'd arena is readable to root; the value is there and nowhere
      // else: once for masking, once in the command's environment entry.
      CHECK(maps.find("secretmem") == std::string::npos);
      CHECK(scan.hits.at(0) <= 2);
    }
  }

  // chittyctl mcp never receives a value the agent withholds: nothing to find
  // even on the mlock path, where the arena is readable.
  int in[2], out[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  pid_t mcp = ::fork();
  if (mcp == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::close(in[1]);
    ::close(out[0]);
    ::setenv("CHITTY_TEST_NO_MEMFD_SECRET", "1", 1);
    ::execl(ctl().c_str(), "chittyctl", "--socket", a.socket().c_str(), "mcp", static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  std::string requests =
      R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})" "\n"
      R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"credential_type":"openai_api_key"}}})" "\n";
  REQUIRE(::write(in[1], requests.data(), requests.size()) == static_cast<ssize_t>(requests.size()));
  std::string got;
  char buf[4096];
  while (std::count(got.begin(), got.end(), '\n') < 2) {
    ssize_t n = ::read(out[0], buf, sizeof buf);
    REQUIRE(n > 0);
    got.append(buf, static_cast<std::size_t>(n));
  }
  CHECK(got.find("value_released\":false") != std::string::npos);
  chitty::testing::Scan scan = chitty::testing::scan_memory(mcp, {kValue, kValue.substr(0, 12)});  // (not the tail: hex digit tables in libstdc++ hold it)
  ::close(in[1]);
  int status = 0;
  ::waitpid(mcp, &status, 0);
  ::close(out[0]);
  CHECK(scan.bytes_read > 100000);
  CHECK(scan.hits.at(0) == 0);
  CHECK(scan.hits.at(1) == 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}
