#include "chitty/risk/baselines_file.hpp"

namespace chitty::risk {

secure::SignedFile baselines_file(const std::string& path) {
  // The MAC covers this domain line and the baselines' text.
  return secure::SignedFile{path, "chitty-agent risk baselines v1\n", "risk baselines", std::size_t{8} << 20};
}

}  // namespace chitty::risk
