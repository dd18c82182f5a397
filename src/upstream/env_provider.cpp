#include "chitty/upstream/env_provider.hpp"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "chitty/log/log.hpp"
#include "complete_later.hpp"
#include "environment.hpp"

namespace chitty::upstream {
namespace {

std::string associated(const std::string& name) { return "env:" + name; }

}  // namespace

EnvProvider::EnvProvider(secure::Arena& arena, secure::Sealer& sealer, loop::TaskQueue& tasks)
    : arena_(arena), sealer_(sealer), tasks_(tasks) {}

EnvProvider::~EnvProvider() = default;  // the sealed values wipe themselves

EnvProvider::ImportReport EnvProvider::import(const std::vector<std::string>& names) {
  ImportReport report;
  for (const std::string& name : names) {
    if (name.empty() || values_.count(name) != 0) continue;
    std::size_t size = 0;
    secure::SealedValue sealed;
    bool set = take_environment_variable(name, [&](std::string_view value) {
      size = value.size();
      sealed = secure::SealedValue::seal(arena_, sealer_, value, associated(name));
    });
    // Scrubbed whether or not the import worked: a value the agent cannot
    // serve must not linger in /proc/PID/environ either.
    if (!set) {
      report.missing.push_back(name);
    } else if (sealed) {
      values_.emplace(name, std::move(sealed));
      report.imported.push_back(name);
    } else {
      report.failed.push_back(name);
      log::error("upstream", "environment variable not imported: no room in locked memory for its value",
                 {{"env", name}, {"bytes", size}, {"max_bytes", secure::Arena::kMaxBlock - sealer_.overhead()}});
    }
  }
  return report;
}

std::vector<std::string> EnvProvider::scrub(const std::vector<std::string>& names) {
  std::vector<std::string> scrubbed;
  for (const std::string& name : names) {
    if (name.empty() || values_.count(name) != 0) continue;
    if (take_environment_variable(name, [](std::string_view) {})) scrubbed.push_back(name);
  }
  return scrubbed;
}

namespace {

std::string joined(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : " ") + n;
  return out;
}

}  // namespace

void EnvProvider::take(const std::vector<std::string>& names, bool serve) {
  if (!serve) {
    // Not served, but scrubbed all the same: /proc/PID/environ must not keep
    // secrets the catalog names.
    auto scrubbed = scrub(names);
    if (!scrubbed.empty()) {
      log::info("upstream", "environment variables named in the catalog scrubbed from the environment, not imported "
                            "([fallback] env = false)",
                {{"count", scrubbed.size()}, {"env", joined(scrubbed)}});
    }
    return;
  }
  auto report = import(names);
  if (!report.missing.empty()) {
    log::info("upstream", "environment variables named in the catalog are not set; they cannot be sources",
              {{"count", report.missing.size()}, {"env", joined(report.missing)}});
  }
  if (!report.imported.empty()) {
    log::info("upstream", "environment values imported into locked memory and scrubbed from the environment",
              {{"count", report.imported.size()}});
  }
}

FetchResult EnvProvider::open(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    return tl::unexpected(FetchFailure{FetchError::not_found, "environment variable " + name + " was not set at start"});
  }
  secure::SecureBuffer out = it->second.open();
  if (!out) {
    return tl::unexpected(FetchFailure{FetchError::no_memory, "no locked memory for the value right now"});
  }
  return out;
}

void EnvProvider::fetch(const FetchRequest& request, FetchDone done) {
  const auto& entry = request.entry;
  FetchResult r = entry && !entry->env.empty()
                      ? open(entry->env)
                      : tl::unexpected(FetchFailure{FetchError::not_found, "no environment variable is configured"});
  complete_later(tasks_, std::move(done), std::move(r));
}

}  // namespace chitty::upstream
