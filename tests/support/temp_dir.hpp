// A private temporary directory, removed with everything in it.
#pragma once

#include <string>

namespace chitty::testing {

class TempDir {
 public:
  TempDir();  // under $TMPDIR (or /tmp), mode 0700
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }
  // Writes a file (creating parents is the caller's business).
  void write(const std::string& name, const std::string& content, int mode = 0600) const;

 private:
  std::string path_;
};

std::string read_file(const std::string& path);

}  // namespace chitty::testing
