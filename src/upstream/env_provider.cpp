#include "chitty/upstream/env_provider.hpp"

#include <cstdlib>
#include <cstring>
#include <utility>

#include "chitty/base/wipe.hpp"
#include "chitty/log/log.hpp"
#include "complete_later.hpp"

extern char** environ;

namespace chitty::upstream {
namespace {

std::string associated(const std::string& name) { return "env:" + name; }

}  // namespace

EnvProvider::EnvProvider(secure::Arena& arena, secure::Sealer& sealer, loop::TaskQueue& tasks)
    : arena_(arena), sealer_(sealer), tasks_(tasks) {}

EnvProvider::~EnvProvider() {
  for (auto& [name, sealed] : values_) arena_.release(sealed.block);
}

EnvProvider::ImportReport EnvProvider::import(const std::vector<std::string>& names) {
  ImportReport report;
  for (const std::string& name : names) {
    if (name.empty() || values_.count(name) != 0) continue;
    // Every "NAME=" string in the environment: the first holds the value
    // getenv() would return; all of them are scrubbed.
    std::vector<char*> copies;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
      if (std::strncmp(*e, name.c_str(), name.size()) == 0 && (*e)[name.size()] == '=') copies.push_back(*e);
    }
    if (copies.empty()) {
      report.missing.push_back(name);
      continue;
    }
    const char* value = copies.front() + name.size() + 1;
    std::size_t n = std::strlen(value);
    std::size_t sealed_size = sealer_.sealed_size(n);
    bool stored = false;
    if (sealed_size <= secure::Arena::kMaxBlock) {
      secure::Block block = arena_.allocate(sealed_size);
      if (block) {
        sealer_.seal(std::as_bytes(std::span<const char>(value, n)), associated(name), block.data);
        values_.emplace(name, Sealed{block, n});
        stored = true;
      }
    }
    // Scrub whether or not the import worked: a value the agent cannot serve
    // must not linger in /proc/PID/environ either.
    std::vector<std::size_t> lengths;
    for (char* c : copies) lengths.push_back(std::strlen(c));
    unsetenv(name.c_str());
    for (std::size_t i = 0; i < copies.size(); ++i) secure_zero(copies[i], lengths[i]);
    if (stored) {
      report.imported.push_back(name);
    } else {
      report.failed.push_back(name);
      log::error("upstream", "environment variable not imported: no room in locked memory for its value",
                 {{"env", name}, {"bytes", n}, {"max_bytes", secure::Arena::kMaxBlock - sealer_.overhead()}});
    }
  }
  return report;
}

FetchResult EnvProvider::open(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    return tl::unexpected(FetchFailure{FetchError::not_found, "environment variable " + name + " was not set at start"});
  }
  const Sealed& s = it->second;
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena_, s.plaintext_size == 0 ? 1 : s.plaintext_size);
  if (!out) return tl::unexpected(FetchFailure{FetchError::no_memory, "no locked memory for the value right now"});
  std::span<const std::byte> sealed(s.block.data, sealer_.sealed_size(s.plaintext_size));
  if (!sealer_.open(sealed, associated(name), reinterpret_cast<std::byte*>(out.data()))) {
    // Only memory corruption gets here: the value is sealed in locked memory.
    log::error("upstream", "sealed environment value failed authentication", {{"env", name}});
    return tl::unexpected(FetchFailure{FetchError::unavailable, "the imported value of " + name + " is damaged"});
  }
  out.resize(s.plaintext_size);
  return out;
}

void EnvProvider::fetch(std::shared_ptr<const catalog::Entry> entry, FetchDone done) {
  FetchResult r = entry && !entry->env.empty()
                      ? open(entry->env)
                      : tl::unexpected(FetchFailure{FetchError::not_found, "no environment variable is configured"});
  complete_later(tasks_, std::move(done), std::move(r));
}

}  // namespace chitty::upstream
