// Fuzz target: recovering an audit spool from arbitrary bytes. The input is
// split into up to three segment files (at 0xFF bytes) plus a `shipped` file
// (the first line); the spool is opened, which recovers it, then an event is
// appended and the spool read back. Invariants: no crash; the recovered
// last seq is one of the seqs in the input (or 0); after a recovery the
// newest segment ends with a newline; an event appended after recovery can
// be read back with the next seq.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "chitty/audit/spool.hpp"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "spool_recovery: invariant broken: %s\n", what);
    std::abort();
  }
}

std::string workdir() {
  static std::string dir = [] {
    char tmpl[] = "/tmp/chitty-spool-fuzz.XXXXXX";
    char* d = mkdtemp(tmpl);
    check(d != nullptr, "mkdtemp");
    return std::string(d);
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace fs = std::filesystem;
  std::string dir = workdir() + "/audit";
  fs::remove_all(dir);
  fs::create_directories(dir);
  std::string input(reinterpret_cast<const char*>(data), size);
  std::size_t nl = input.find('\n');
  std::string shipped = nl == std::string::npos ? "" : input.substr(0, nl);
  std::string rest = nl == std::string::npos ? input : input.substr(nl + 1);
  std::ofstream(dir + "/shipped") << shipped;
  std::uint64_t first = 1;
  for (int part = 0; part < 3; ++part) {
    std::size_t cut = rest.find('\xff');
    std::string content = rest.substr(0, cut);
    char name[64];
    std::snprintf(name, sizeof name, "/segment-%020llu.ndjson", static_cast<unsigned long long>(first));
    std::ofstream(dir + name, std::ios::binary) << content;
    first += 1000;
    if (cut == std::string::npos) break;
    rest = rest.substr(cut + 1);
  }
  chitty::audit::SpoolOptions o;
  o.dir = dir;
  o.segment_bytes = 4096;
  o.max_bytes = 1 << 20;
  o.reserve_bytes = 64 * 1024;
  chitty::audit::Recovery r;
  auto spool = chitty::audit::Spool::open(o, r);
  if (!spool) return 0;  // unreadable: reported, not crashed
  check(r.last_seq == 0 || input.find("\"seq\":" + std::to_string(r.last_seq)) != std::string::npos,
        "the recovered seq is in the input");
  check((*spool)->acknowledged() <= (*spool)->last_seq(), "acknowledged <= last seq");
  std::string newest;
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string name = entry.path().filename().string();
    if (name.starts_with("segment-") && name.ends_with(".ndjson") && entry.path().string() > newest) {
      newest = entry.path().string();
    }
  }
  if (!newest.empty() && fs::file_size(newest) > 0) {
    std::ifstream seg(newest, std::ios::binary);
    seg.seekg(-1, std::ios::end);
    check(seg.get() == '\n', "the newest segment ends with a newline after recovery");
  }
  std::uint64_t next = r.last_seq + 1;
  std::string line = "{\"v\":1,\"id\":\"x\",\"seq\":" + std::to_string(next) + ",\"prev\":\"" + std::string(64, '0') +
                     "\",\"mac\":\"" + std::string(64, 'a') + "\"}";
  if ((*spool)->append(next, line)) {
    auto b = (*spool)->read_after(next - 1, 1 << 20, 1 << 30);  // everything after: the appended line is last
    check(b.has_value(), "read_after after append");
    check(!b->lines.empty() && b->lines.back() == line, "the appended line reads back last");
    check((*spool)->last_seq() == next, "last seq is the appended one");
  }
  return 0;
}
