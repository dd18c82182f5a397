#include <catch2/catch.hpp>

#include <csignal>
#include <memory>
#include <vector>

#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/signal.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/loop/timer.hpp"

using namespace std::chrono_literals;
using chitty::loop::Handle;
using chitty::loop::Loop;
using chitty::loop::Signal;
using chitty::loop::TaskQueue;
using chitty::loop::Timer;

TEST_CASE("an empty loop closes cleanly", "[loop]") {
  Loop loop;
  loop.run();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("a one-shot timer fires once and the loop then closes", "[loop][timer]") {
  Loop loop;
  int fired = 0;
  Timer t(loop, [&] { ++fired; });
  t.start(1ms);
  loop.run();
  CHECK(fired == 1);
  CHECK_FALSE(t.active());
  t.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("a repeating timer can stop itself", "[loop][timer]") {
  Loop loop;
  int fired = 0;
  Timer t(loop, [&] {
    if (++fired == 3) t.stop();
  });
  t.start(1ms, 1ms);
  loop.run();
  CHECK(fired == 3);
  t.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("a timer callback may destroy its own timer", "[loop][timer]") {
  Loop loop;
  bool fired = false;
  std::unique_ptr<Timer> t;
  t = std::make_unique<Timer>(loop, [&] {
    fired = true;
    t.reset();  // the uv handle is freed later, from its close callback
  });
  t->start(1ms);
  loop.run();
  CHECK(fired);
  CHECK(t == nullptr);
  REQUIRE(loop.close().has_value());
}

TEST_CASE("destroying an owner closes its handle; memory is freed in the close callback", "[loop][handle]") {
  Loop loop;
  bool closed = false;
  {
    Handle<uv_timer_t> h;
    REQUIRE(uv_timer_init(loop.raw(), h.get()) == 0);
    uv_timer_start(h.get(), [](uv_timer_t*) {}, 100000, 0);
    h.close([&] { closed = true; });
    CHECK_FALSE(h);
    CHECK_FALSE(closed);  // only after the loop ran the close callback
  }
  loop.run();
  CHECK(closed);
  REQUIRE(loop.close().has_value());
}

TEST_CASE("a handle that was never initialised is freed at once", "[loop][handle]") {
  bool closed = false;
  Handle<uv_pipe_t> h;
  h.close([&] { closed = true; });
  CHECK(closed);
}

TEST_CASE("moving a handle transfers ownership", "[loop][handle]") {
  Loop loop;
  Handle<uv_timer_t> a;
  REQUIRE(uv_timer_init(loop.raw(), a.get()) == 0);
  uv_timer_t* raw = a.get();
  Handle<uv_timer_t> b(std::move(a));
  CHECK_FALSE(a);
  CHECK(b.get() == raw);
  b.close();
  loop.run();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("close() reports a handle someone forgot to close", "[loop]") {
  Loop loop;
  Handle<uv_timer_t> leaked;
  REQUIRE(uv_timer_init(loop.raw(), leaked.get()) == 0);
  uv_timer_start(leaked.get(), [](uv_timer_t*) {}, 100000, 0);
  auto r = loop.close();
  REQUIRE_FALSE(r.has_value());
  CHECK(r.error().message.find("timer") != std::string::npos);
  // Now close it properly: the loop closes.
  leaked.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("signals are delivered on the loop and can close themselves", "[loop][signal]") {
  Loop loop;
  int got = 0;
  std::unique_ptr<Signal> sig;
  sig = std::make_unique<Signal>(loop, SIGUSR1, [&](int signum) {
    got = signum;
    sig.reset();
  });
  Timer kick(loop, [] { std::raise(SIGUSR1); });
  kick.start(1ms);
  loop.run();
  CHECK(got == SIGUSR1);
  kick.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("an unref'd timer does not keep the loop alive", "[loop][timer]") {
  Loop loop;
  bool fired = false;
  Timer t(loop, [&] { fired = true; });
  t.start(10s);
  t.unref();
  loop.run();  // returns at once
  CHECK_FALSE(fired);
  t.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("posted tasks run on a later turn, in order, never inside post()", "[loop][task-queue]") {
  Loop loop;
  TaskQueue q(loop);
  std::vector<int> ran;
  Timer keep_alive(loop, [&] {
    // Posting from inside the loop: nothing runs until this callback returns.
    q.post([&] { ran.push_back(1); });
    q.post([&] {
      ran.push_back(2);
      q.post([&] { ran.push_back(3); });  // re-posted work waits for the next turn
    });
    CHECK(ran.empty());
    CHECK(q.pending() == 2);
  });
  keep_alive.start(1ms);
  Timer stopper(loop, [&] {
    if (ran.size() == 3) {
      q.close();
      stopper.close();
    }
  });
  stopper.start(2ms, 1ms);
  loop.run();
  CHECK(ran == std::vector<int>{1, 2, 3});
  keep_alive.close();
  REQUIRE(loop.close().has_value());
}

TEST_CASE("a closed task queue drops what is queued and refuses more", "[loop][task-queue]") {
  Loop loop;
  TaskQueue q(loop);
  auto token = std::make_shared<int>(0);
  bool ran = false;
  CHECK(q.post([token, &ran] { ran = true; }));
  CHECK(token.use_count() == 2);
  q.close();
  CHECK(token.use_count() == 1);  // the task was destroyed, not run
  CHECK_FALSE(q.post([&ran] { ran = true; }));
  loop.run();
  CHECK_FALSE(ran);
  REQUIRE(loop.close().has_value());
}

TEST_CASE("the task queue does not keep the loop alive", "[loop][task-queue]") {
  Loop loop;
  TaskQueue q(loop);
  loop.run();  // returns at once: nothing but the queue
  q.close();
  REQUIRE(loop.close().has_value());
}
