#include "environment.hpp"

#include <cstdlib>
#include <cstring>
#include <vector>

#include "chitty/base/wipe.hpp"

extern char** environ;

namespace chitty::upstream {

bool take_environment_variable(const std::string& name, const std::function<void(std::string_view value)>& use) {
  if (name.empty()) return false;
  // Every "NAME=" string: the first holds the value getenv() would return;
  // all of them are scrubbed.
  std::vector<char*> copies;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    if (std::strncmp(*e, name.c_str(), name.size()) == 0 && (*e)[name.size()] == '=') copies.push_back(*e);
  }
  if (copies.empty()) return false;
  const char* value = copies.front() + name.size() + 1;
  use(std::string_view(value, std::strlen(value)));
  std::vector<std::size_t> lengths;
  for (char* c : copies) lengths.push_back(std::strlen(c));
  unsetenv(name.c_str());
  for (std::size_t i = 0; i < copies.size(); ++i) secure_zero(copies[i], lengths[i]);
  return true;
}

}  // namespace chitty::upstream
