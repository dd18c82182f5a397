// chitty-agent: parse the command line, load the configuration, run.
#include <iostream>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "chitty/app/app.hpp"
#include "chitty/audit/trail.hpp"
#include "chitty/config/config.hpp"
#include "chitty_version.h"

namespace {

void print_diagnostics(const std::vector<chitty::config::Diagnostic>& diags) {
  for (const auto& d : diags) std::cerr << d.to_string() << '\n';
  std::cerr << diags.size() << (diags.size() == 1 ? " problem" : " problems") << " found\n";
}

}  // namespace

int main(int argc, char** argv) {
  auto process_start = chitty::SystemClock().now();
  CLI::App cli{"chitty-agent: per-host secrets sidecar serving credentials over a Unix socket"};
  cli.set_version_flag("--version", std::string("chitty-agent ") + CHITTY_VERSION);
  chitty::app::RunOptions options;
  std::optional<std::string> check_path;
  bool print_defaults = false;
  std::optional<std::string> verify_path, chain_key, head;
  cli.add_option("--config", options.config_path, "TOML configuration file (default: the built-in defaults)");
  cli.add_option("--check-config", check_path, "validate FILE, print every problem, exit 0 (valid) or 2")
      ->option_text("FILE");
  cli.add_option("--socket", options.socket, "override agent.socket");
  cli.add_option("--state-dir", options.state_dir, "override agent.state_dir");
  cli.add_flag("--print-default-config", print_defaults, "print the built-in configuration as commented TOML");
  cli.add_flag("--accept-revocations", options.accept_revocations,
               "take the state directory's revocations file as it is (or none when it is missing) and seal it "
               "again, instead of refusing to start; recorded in the audit trail");
  cli.add_option("--verify-audit", verify_path,
                 "check an audit spool directory or exported NDJSON (- for stdin); exit 0 intact, 1 broken")
      ->option_text("PATH");
  cli.add_option("--chain-key", chain_key, "the chain key file, for --verify-audit")->option_text("FILE");
  cli.add_option("--head", head, "for --verify-audit: the mirrored chain head SEQ:MAC the chain must reach")
      ->option_text("SEQ:MAC");
  CLI11_PARSE(cli, argc, argv);

  if (print_defaults) {
    std::cout << chitty::config::default_config_toml();
    return chitty::app::kExitOk;
  }
  if (verify_path) {
    if (!chain_key) {
      std::cerr << "--verify-audit needs --chain-key FILE (audit.chain_key_file)\n";
      return 2;
    }
    return chitty::audit::verify_command(*verify_path, *chain_key, head);
  }
  if (check_path) {
    auto loaded = chitty::config::load_file(*check_path);
    if (!loaded) {
      print_diagnostics(loaded.error());
      return chitty::app::kExitBadConfig;
    }
    for (const std::string& w : chitty::app::selector_warnings(*loaded)) std::cerr << "warning: " << w << '\n';
    std::cout << *check_path << ": ok\n";
    return chitty::app::kExitOk;
  }
  auto config = chitty::app::load_configuration(options);
  if (!config) {
    print_diagnostics(config.error());
    chitty::app::report_startup_failure("invalid configuration (" + std::to_string(config.error().size()) +
                                        (config.error().size() == 1 ? " problem" : " problems") + "; first: " +
                                        config.error().front().to_string() + ")");
    return chitty::app::kExitBadConfig;
  }
  try {
    return chitty::app::run(options, *config, process_start);
  } catch (const std::exception& e) {
    // Only start-up code throws (allocation failures and the like); say so to
    // the service manager and the operator rather than abort silently.
    std::cerr << "chitty-agent: fatal: " << e.what() << '\n';
    chitty::app::report_startup_failure(std::string("fatal error: ") + e.what());
    return chitty::app::kExitFailure;
  }
}
