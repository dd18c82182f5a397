// How many audit events per second the spool takes: events recorded through
// the SpoolRecorder (chain MAC, JSON line, write(2), fsync batched as in the
// default configuration, and with an fsync per event for comparison).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/loop/loop.hpp"

namespace {

using Clock = std::chrono::steady_clock;

void run(const char* label, std::uint32_t fsync_events, int n) {
  char tmpl[] = "/tmp/chitty-audit-bench.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  chitty::secure::ArenaOptions ao;
  ao.capacity = 1 << 20;
  ao.allow_unlocked = true;
  auto arena = chitty::secure::Arena::create(ao);
  auto key = chitty::secure::MacKey::from_bytes(**arena, "bench-chain-key-0123456789abcdef0123456789");
  chitty::loop::Loop loop;
  chitty::SystemClock clock;
  chitty::audit::SpoolOptions so;
  so.dir = dir + "/audit";
  so.max_bytes = 4ULL << 30;
  so.reserve_bytes = 1 << 20;
  chitty::audit::Recovery r;
  auto spool = chitty::audit::Spool::open(so, r);
  if (!spool) {
    std::fprintf(stderr, "%s\n", spool.error().message.c_str());
    return;
  }
  chitty::audit::RecorderOptions ro;
  ro.fsync_events = fsync_events;
  ro.host = "bench";
  {
    chitty::audit::SpoolRecorder rec(loop, **spool, **key, clock, r, ro);
    chitty::audit::Event e;
    e.action = "retrieve";
    e.decision = chitty::audit::Decision::allow;
    e.service = "chittyregistry";
    e.uid = 1001;
    e.pid = 4242;
    e.exe = "/usr/bin/registry";
    e.unit = "chittyregistry.service";
    e.ref = "op://chittyos integrations/openai api/api_key";
    e.credential_type = "openai_api_key";
    e.cache = "hit";
    e.source = "1password";
    e.mode = "normal";
    e.request_id = "9f3c0a1e00000007";
    auto t0 = Clock::now();
    for (int i = 0; i < n; ++i) {
      e.at = clock.wall_now();
      if (!rec.record(e)) {
        std::fprintf(stderr, "record failed\n");
        break;
      }
      // One loop turn per event, as the agent takes per request: batched
      // syncs run on libuv's thread pool and complete here.
      uv_run(loop.raw(), UV_RUN_NOWAIT);
    }
    rec.close();  // the last fsync, synchronous, counts
    auto secs = std::chrono::duration<double>(Clock::now() - t0).count();
    std::printf("%-42s events=%d seconds=%.3f events_per_s=%.0f us_per_event=%.2f bytes_per_event=%.0f\n", label, n,
                secs, n / secs, secs * 1e6 / n, static_cast<double>((*spool)->bytes()) / n);
  }
  spool->reset();
  (void)loop.close();
  std::filesystem::remove_all(dir);
}

}  // namespace

int main(int argc, char** argv) {
  int n = argc > 1 ? std::atoi(argv[1]) : 200000;
  run("fsync every 256 events (default)", 256, n);
  run("fsync every event (before answering)", 1, std::max(1, n / 20));
  return 0;
}
