// The Notifier against a NOTIFY_SOCKET this test listens on, the way systemd
// does (datagrams of KEY=VALUE lines).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "chitty/lifecycle/notify.hpp"
#include "chitty/lifecycle/watchdog.hpp"
#include "notify_socket.hpp"

namespace {

// The shared test socket, exported as NOTIFY_SOCKET for this process.
struct NotifySocket {
  chitty::testing::NotifySocket socket;
  NotifySocket() { setenv("NOTIFY_SOCKET", socket.path().c_str(), 1); }
  ~NotifySocket() { unsetenv("NOTIFY_SOCKET"); }
  std::string next() { return socket.next(std::chrono::seconds(2)).value_or("<nothing>"); }
};

}  // namespace

TEST_CASE("the notifier speaks sd_notify's protocol", "[lifecycle][notify]") {
  NotifySocket sock;
  chitty::lifecycle::Notifier n;
  CHECK(n.enabled());
  n.status("starting");
  CHECK(sock.next() == "STATUS=starting");
  n.ready("serving on /run/x.sock");
  CHECK(sock.next() == "READY=1\nSTATUS=serving on /run/x.sock");
  n.reloading("reloading configuration");
  std::string r = sock.next();
  CHECK(r.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
  CHECK(r.find("\nSTATUS=reloading configuration") != std::string::npos);
  n.watchdog();
  CHECK(sock.next() == "WATCHDOG=1");
  n.stopping("stopping: draining 2 connections");
  CHECK(sock.next() == "STOPPING=1\nSTATUS=stopping: draining 2 connections");
  CHECK(n.stopping_sent());
  n.stopping("stopped");
  CHECK(sock.next() == "STATUS=stopped");  // STOPPING=1 is sent once
}

TEST_CASE("MONOTONIC_USEC is CLOCK_MONOTONIC in microseconds", "[lifecycle][notify]") {
  NotifySocket sock;
  chitty::lifecycle::Notifier n;
  timespec before{};
  clock_gettime(CLOCK_MONOTONIC, &before);
  n.reloading("r");
  std::string r = sock.next();
  auto pos = r.find("MONOTONIC_USEC=");
  REQUIRE(pos != std::string::npos);
  unsigned long long usec = std::strtoull(r.c_str() + pos + 15, nullptr, 10);
  unsigned long long b = static_cast<unsigned long long>(before.tv_sec) * 1000000ULL +
                         static_cast<unsigned long long>(before.tv_nsec) / 1000ULL;
  CHECK(usec >= b);
  CHECK(usec < b + 5'000'000ULL);
}

TEST_CASE("STATUS values are one line", "[lifecycle][notify]") {
  CHECK(chitty::lifecycle::status_line("a\nb\rc\td") == "a b c d");
  NotifySocket sock;
  chitty::lifecycle::Notifier n;
  n.status("reload failed:\nline 3");
  CHECK(sock.next() == "STATUS=reload failed: line 3");
}

TEST_CASE("without NOTIFY_SOCKET the notifier is silent", "[lifecycle][notify]") {
  unsetenv("NOTIFY_SOCKET");
  chitty::lifecycle::Notifier n;
  CHECK_FALSE(n.enabled());
  n.ready("x");  // must not fail or block
  n.stopping("y");
  CHECK(n.stopping_sent());
}

TEST_CASE("the watchdog interval comes from WATCHDOG_USEC, for this process only", "[lifecycle][watchdog]") {
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  CHECK_FALSE(chitty::lifecycle::watchdog_interval().has_value());
  setenv("WATCHDOG_USEC", "3000000", 1);
  auto i = chitty::lifecycle::watchdog_interval();
  REQUIRE(i.has_value());
  CHECK(i->count() == 3000000);
  setenv("WATCHDOG_PID", std::to_string(getpid()).c_str(), 1);
  CHECK(chitty::lifecycle::watchdog_interval().has_value());
  setenv("WATCHDOG_PID", std::to_string(getpid() + 1).c_str(), 1);  // meant for another process
  CHECK_FALSE(chitty::lifecycle::watchdog_interval().has_value());
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
}
