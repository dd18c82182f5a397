#include "memory_scan.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <stdexcept>
#include <string_view>

namespace chitty::testing {

Scan scan_memory(pid_t pid, const std::vector<std::string>& needles) {
  Scan s;
  s.hits.assign(needles.size(), 0);
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  if (!maps) throw std::runtime_error("cannot read /proc/" + std::to_string(pid) + "/maps");
  int mem = ::open(("/proc/" + std::to_string(pid) + "/mem").c_str(), O_RDONLY | O_CLOEXEC);
  if (mem < 0) throw std::runtime_error("cannot open /proc/" + std::to_string(pid) + "/mem");
  std::size_t overlap = 0;
  for (const auto& n : needles) overlap = std::max(overlap, n.size());
  std::string line;
  std::vector<char> buf;
  while (std::getline(maps, line)) {
    unsigned long lo = 0, hi = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &lo, &hi, perms) != 3) continue;
    if (perms[0] != 'r') {
      ++s.regions_unreadable;
      continue;
    }
    if (hi - lo > (1UL << 30)) {  // ASan's shadow: reserved, never holds our data
      ++s.regions_skipped;
      continue;
    }
    constexpr std::size_t kChunk = 1 << 20;
    bool read_any = false;
    std::string carry;
    for (unsigned long at_addr = lo; at_addr < hi;) {
      std::size_t want = std::min<std::size_t>(kChunk, hi - at_addr);
      buf.resize(carry.size() + want);
      std::memcpy(buf.data(), carry.data(), carry.size());
      ssize_t n = ::pread(mem, buf.data() + carry.size(), want, static_cast<off_t>(at_addr));
      if (n <= 0) break;  // EIO: not readable through /proc/PID/mem (memfd_secret, vvar)
      read_any = true;
      s.bytes_read += static_cast<std::uint64_t>(n);
      std::string_view hay(buf.data(), carry.size() + static_cast<std::size_t>(n));
      for (std::size_t i = 0; i < needles.size(); ++i) {
        for (std::size_t p = hay.find(needles[i]); p != std::string_view::npos; p = hay.find(needles[i], p + 1)) {
          // A match lying wholly inside the carried-over bytes was counted in the previous chunk.
          if (p + needles[i].size() > carry.size()) ++s.hits[i];
        }
      }
      std::size_t keep = std::min(hay.size(), overlap > 0 ? overlap - 1 : 0);
      carry.assign(hay.substr(hay.size() - keep));
      at_addr += static_cast<unsigned long>(n);
    }
    if (read_any) {
      ++s.regions_read;
    } else {
      ++s.regions_unreadable;
    }
  }
  ::close(mem);
  return s;
}

}  // namespace chitty::testing
