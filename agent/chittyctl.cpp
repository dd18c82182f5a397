// chittyctl: the agent's command-line client (docs/chittyctl.md). Parses
// the command line and hands it to the client library.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <CLI/CLI.hpp>

#include "chitty/audit/trail.hpp"
#include "chitty/base/units.hpp"
#include "chitty/client/commands.hpp"
#include "chitty/secure/hardening.hpp"
#include "chitty_version.h"

namespace client = chitty::client;

namespace {

int usage(const std::string& message) {
  std::cerr << "chittyctl: " << message << "\n";
  return static_cast<int>(client::Exit::usage);
}

}  // namespace

int main(int argc, char** argv) {
  // Descriptors 0-2 are always open (on /dev/null when we were started
  // without them), so that nothing opened later — the locked arena's
  // descriptor, a connection — can become "standard output".
  for (int fd = 0; fd <= 2; ++fd) {
    if (::fcntl(fd, F_GETFD) < 0 && ::open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY) != fd) return 1;
  }
  CLI::App cli{"chittyctl: credentials from chitty-agent, for people, scripts and AI assistants"};
  cli.set_version_flag("--version", std::string("chittyctl ") + CHITTY_VERSION);
  cli.require_subcommand(1);
  cli.fallthrough();
  std::optional<std::string> socket;
  std::string timeout = "10s", purpose, environment, step_up_file;
  cli.add_option("--socket", socket, "the agent's socket (default: $CHITTY_AGENT_SOCKET, /run/chitty-agent/agent.sock)")
      ->option_text("PATH")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cli.add_option("--timeout", timeout, "how long to wait for each answer (default 10s)")->option_text("DURATION");
  cli.add_option("--purpose", purpose, "the purpose stated to the agent (context.purpose)");
  cli.add_option("--environment", environment, "the environment stated to the agent (informational)");
  cli.add_option("--step-up-file", step_up_file, "a file with the service's step-up token (X-Chitty-Step-Up)")
      ->option_text("FILE");

  client::GetOptions get;
  std::string get_ref;
  auto* get_cmd = cli.add_subcommand("get", "print a credential's value");
  get_cmd->add_option("ref", get_ref, "op://VAULT/ITEM[/SECTION]/FIELD");
  get_cmd->add_option("--type", get.what.type, "a credential type of the agent's catalog instead of a reference");
  get_cmd->add_flag("--json", get.json, "print the agent's whole answer (JSON) instead of the value");
  bool no_newline = false;
  get_cmd->add_flag("-n,--no-newline", no_newline, "no newline after the value");

  cli.add_subcommand("health", "print the agent's health (exit 8 when it is unhealthy)");

  std::string insights_service;
  auto* insights_cmd = cli.add_subcommand("insights", "a service's access patterns, risk and predictions (admin)");
  insights_cmd->add_option("service", insights_service, "the service")->required();

  client::RevokeOptions revoke;
  auto* revoke_cmd = cli.add_subcommand("revoke", "emergency revocation (needs the emergency token)");
  revoke_cmd->add_option("ref", revoke.ref, "the reference to revoke");
  revoke_cmd->add_option("--type", revoke.type, "revoke a credential type");
  revoke_cmd->add_option("--service", revoke.service, "revoke all of a service's access");
  revoke_cmd->add_flag("--all", revoke.all, "revoke everything");
  revoke_cmd->add_option("--reason", revoke.reason, "why (recorded in the audit trail)");
  revoke_cmd->add_flag("--clear", revoke.clear, "lift the revocation instead");
  revoke_cmd->add_option("--token-file", revoke.token.file, "the emergency token's file (mode 0600)")
      ->option_text("FILE");
  revoke_cmd->add_option("--token-credential", revoke.token.credential,
                         "the emergency token as a systemd credential ($CREDENTIALS_DIRECTORY/NAME)")
      ->option_text("NAME");

  auto* audit_cmd = cli.add_subcommand("audit", "the audit trail: tail, query, verify");
  audit_cmd->require_subcommand(1);
  client::AuditOptions tail, query;
  std::string interval = "1s";
  auto* tail_cmd = audit_cmd->add_subcommand("tail", "the newest audit events, one JSON object per line (admin)");
  tail_cmd->add_flag("-f,--follow", tail.follow, "keep printing new events");
  tail_cmd->add_option("-n,--lines", tail.limit, "how many to start with (default 20)");
  tail_cmd->add_option("--service", tail.service, "only this service's events");
  tail_cmd->add_option("--interval", interval, "how often to ask when following (default 1s)");
  auto* query_cmd = audit_cmd->add_subcommand("query", "audit events matching filters (admin)");
  query_cmd->add_option("--service", query.service, "only this service's events");
  query_cmd->add_option("--since", query.since, "RFC 3339 time, or a duration back from now (15m, 2h)");
  query_cmd->add_option("--limit", query.limit, "the newest this many (1 to 1000, default 20)");
  query_cmd->add_flag("--json", query.json, "the agent's whole answer instead of one event per line");
  std::string verify_path, chain_key;
  std::optional<std::string> head;
  auto* verify_cmd = audit_cmd->add_subcommand("verify", "check an audit spool or exported NDJSON (- for stdin)");
  verify_cmd->add_option("path", verify_path, "a spool directory, an NDJSON file, or -")->required();
  verify_cmd->add_option("--chain-key", chain_key, "the chain key file (audit.chain_key_file)")->required();
  verify_cmd->add_option("--head", head, "a mirrored chain head SEQ:MAC the chain must reach");

  client::RunOptions run;
  auto* run_cmd = cli.add_subcommand("run", "run a command with the op:// references of its environment resolved");
  run_cmd->add_option("--env-file", run.env_files, "NAME=VALUE lines to add (may repeat; later wins)");
  bool no_masking = false;
  run_cmd->add_flag("--no-masking", no_masking, "do not mask values in the command's output (exec it directly)");
  run_cmd->prefix_command();
  run_cmd->fallthrough(false);

  client::InjectOptions inject;
  std::string file_mode = "0600";
  auto* inject_cmd = cli.add_subcommand("inject", "render a template's {{ op://… }} references");
  inject_cmd->add_option("-i,--in-file", inject.input, "the template (default: standard input)");
  inject_cmd->add_option("-o,--out-file", inject.output, "write to FILE atomically, mode 0600 (default: stdout)");
  inject_cmd->add_option("--file-mode", file_mode, "the mode of --out-file (default 0600; no bits for others)");

  client::McpOptions mcp;
  auto* mcp_cmd = cli.add_subcommand("mcp", "an MCP server on stdio for AI assistants (values masked)");
  mcp_cmd->add_option("--emergency-token-file", mcp.emergency_token_file,
                      "enables the revoke tool with this emergency token")
      ->option_text("FILE");

  // Everything after the first "--" is run's command, untouched by the
  // parser (CLI11 would take its options as chittyctl's).
  std::vector<std::string> after_dashes;
  int parsed_argc = argc;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      parsed_argc = i;
      after_dashes.assign(argv + i + 1, argv + argc);
      break;
    }
  }
  try {
    cli.parse(parsed_argc, argv);
  } catch (const CLI::ParseError& e) {
    int code = cli.exit(e);
    return code == 0 ? 0 : static_cast<int>(client::Exit::usage);
  }

  if (verify_cmd->parsed()) return chitty::audit::verify_command(verify_path, chain_key, head);

  auto wait = chitty::parse_duration(timeout);
  if (!wait || *wait < std::chrono::milliseconds(1)) return usage("--timeout: give a duration such as 10s or 500ms");
  auto every = chitty::parse_duration(interval);
  if (!every || *every < std::chrono::milliseconds(100)) return usage("--interval: give a duration of 100ms or more");
  tail.interval = std::chrono::duration_cast<std::chrono::milliseconds>(*every);
  if (get_cmd->parsed()) {
    get.what.ref = get_ref;
    if (get.what.ref.empty() == get.what.type.empty()) return usage("get: give a reference or --type TYPE (one)");
    get.newline = !no_newline;
  }
  if (inject_cmd->parsed()) {
    char* end = nullptr;
    unsigned long mode = std::strtoul(file_mode.c_str(), &end, 8);
    if (file_mode.empty() || *end != '\0') return usage("--file-mode: give an octal mode such as 0600");
    inject.file_mode = static_cast<unsigned>(mode);
  }
  if (run_cmd->parsed()) {
    run.masking = !no_masking;
    run.command = run_cmd->remaining();
    run.command.insert(run.command.end(), after_dashes.begin(), after_dashes.end());
  } else if (parsed_argc != argc) {
    return usage("\"--\" belongs to run (chittyctl run [OPTIONS] -- COMMAND ARGS...)");
  }

  if (auto hardened = chitty::secure::harden_client_process(); !hardened) {
    std::cerr << "chittyctl: " << hardened.error().message << "\n";
    return static_cast<int>(client::Exit::failure);
  }
  chitty::secure::ArenaOptions arena_options;
  // 1 MiB: room for run's masking windows and a few dozen values; memfd_secret
  // takes its pages out of the kernel's direct map when it is set up, which
  // costs ~10 ms more per start at 2 MiB on this kernel.
  arena_options.capacity = 1u << 20;
  arena_options.allow_unlocked = true;
  auto arena = chitty::secure::Arena::create(arena_options);
  if (!arena) {
    std::cerr << "chittyctl: " << arena.error().message << "\n";
    return static_cast<int>(client::Exit::failure);
  }
  if ((*arena)->backing() == chitty::secure::Backing::unlocked) {
    std::cerr << "chittyctl: warning: memory could not be locked (RLIMIT_MEMLOCK); values may reach swap\n";
  }
  if (!client::install_wiping_allocator()) {
    std::cerr << "chittyctl: libcurl cannot be initialised\n";
    return static_cast<int>(client::Exit::failure);
  }
  client::AgentClient agent(client::socket_path_from(socket), **arena,
                            std::chrono::duration_cast<std::chrono::milliseconds>(*wait));
  client::Session session{**arena, agent, {}, ::isatty(1) == 1};
  session.context.purpose = purpose;
  session.context.environment = environment;
  std::optional<chitty::secure::SecureBuffer> step_up;
  if (!step_up_file.empty() && mcp_cmd->parsed()) {
    return usage("--step-up-file does not apply to mcp: the step-up token is never given to an assistant (docs/mcp.md)");
  }
  if (!step_up_file.empty()) {
    auto token = client::read_token_file(**arena, step_up_file, "step-up token file", true);
    if (!token) return client::report(token.error());
    step_up.emplace(std::move(*token));
    session.context.step_up = &*step_up;
  }

  if (get_cmd->parsed()) return client::get(session, get);
  if (cli.got_subcommand("health")) return client::health(session);
  if (insights_cmd->parsed()) return client::insights(session, insights_service);
  if (revoke_cmd->parsed()) return client::revoke(session, revoke);
  if (tail_cmd->parsed()) return client::audit_tail(session, tail);
  if (query_cmd->parsed()) return client::audit_query(session, query);
  if (run_cmd->parsed()) return client::run(session, run);
  if (inject_cmd->parsed()) return client::inject(session, inject);
  if (mcp_cmd->parsed()) {
    mcp.version = CHITTY_VERSION;
    return client::mcp(session, mcp);
  }
  return usage("no command given (see chittyctl --help)");
}
