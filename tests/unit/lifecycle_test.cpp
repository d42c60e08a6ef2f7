#include "lifecycle.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <mutex>

#include "mock_extensions_api.h"
#include "mock_sink.h"
#include "test_support.h"

namespace relay {
namespace {

using ::testing::_;
using ::testing::Invoke;
using testing::make_batch;
using testing::MockExtensionsApi;
using testing::MockSink;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::StrictMock;

LifecycleEvent invoke(const std::string& id) {
  LifecycleEvent e;
  e.type = LifecycleEvent::Type::kInvoke;
  e.request_id = id;
  e.deadline_ms = static_cast<int64_t>(now_unix_ms()) + 3000;
  return e;
}

LifecycleEvent shutdown_event(int64_t in_ms) {
  LifecycleEvent e;
  e.type = LifecycleEvent::Type::kShutdown;
  e.shutdown_reason = "spindown";
  e.deadline_ms = static_cast<int64_t>(now_unix_ms()) + in_ms;
  return e;
}

TelemetryPost report_for(const std::string& id) {
  std::string body = R"([{"time":"t","type":"platform.report","record":{"requestId":")" + id +
                     R"(","status":"success","metrics":{"durationMs":1.5}}}])";
  return std::move(*parse_batch(std::move(body)).batch);
}

TelemetryPost runtime_done_for(const std::string& id) {
  std::string body = R"([{"time":"t","type":"platform.runtimeDone","record":{"requestId":")" + id +
                     R"(","status":"success"}}])";
  return std::move(*parse_batch(std::move(body)).batch);
}

LifecycleOptions quiet_for(uint32_t shutdown_quiet_ms) {
  LifecycleOptions options;
  options.shutdown_quiet_ms = shutdown_quiet_ms;
  return options;
}

OutletOptions flushing(FlushMode mode, uint32_t period_ms = 0) {
  OutletOptions options;
  options.flush = FlushPolicy{mode, period_ms};
  options.spool.enabled = false;  // these tests are about timing of delivery, not the disk
  return options;
}

TEST(Lifecycle, InvokeReleasesAndShutdownDeliversEverythingThenReturnsZero) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  std::atomic<int> delivered{0};
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&](const Delivery& d, uint64_t) {
    delivered += static_cast<int>(d.events.size());
    return DeliveryResult{};
  }));
  ON_CALL(*sink, flush(_)).WillByDefault(Return(DeliveryResult{}));
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(std::make_unique<Outlet>(std::move(sink), flushing(FlushMode::kNextInvoke)));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});

  StrictMock<MockExtensionsApi> api;
  std::thread late_listener;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        pipeline.consume(make_batch(3));
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        // The report of req-1 arrives only after SHUTDOWN, as in Lambda.
        late_listener = std::thread([&] {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          pipeline.consume(report_for("req-1"));
        });
        return shutdown_event(10000);
      }));
  Lifecycle lifecycle(api, pipeline, quiet_for(5000));
  EXPECT_EQ(lifecycle.run(), 0);
  late_listener.join();
  EXPECT_EQ(lifecycle.invocations(), 1u);
  // The quiet period is long: only seeing req-1's report can end the drain with it delivered.
  EXPECT_EQ(delivered.load(), 4);
  EXPECT_EQ(pipeline.outlets()[0]->counters().delivered, 4u);
}

TEST(Lifecycle, NextFailureReportsExitErrorAndReturnsNonZero) {
  Pipeline pipeline({}, PipelineOptions{});
  StrictMock<MockExtensionsApi> api;
  EXPECT_CALL(api, next())
      .WillOnce(::testing::Throw(LambdaApiError("event/next answered 403", 403, "{}")));
  EXPECT_CALL(api, exit_error("Extension.NextFailed", _)).WillOnce(Return(true));
  Lifecycle lifecycle(api, pipeline, LifecycleOptions{});
  EXPECT_EQ(lifecycle.run(), 1);
}

TEST(Lifecycle, UnknownEventTypesAreIgnored) {
  Pipeline pipeline({}, PipelineOptions{});
  StrictMock<MockExtensionsApi> api;
  LifecycleEvent odd;
  odd.raw_type = "RESTORE";
  EXPECT_CALL(api, next()).WillOnce(Return(odd)).WillOnce(Return(shutdown_event(2000)));
  Lifecycle lifecycle(api, pipeline, quiet_for(10));
  EXPECT_EQ(lifecycle.run(), 0);
}

}  // namespace
}  // namespace relay

namespace relay {
namespace {}  // namespace
}  // namespace relay

namespace relay {
namespace {

// A sink that records what it got and can be made to block in deliver() or flush() until the
// test lets it go.
struct Recorder {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::string> events;  // each event's JSON, in delivery order
  bool block_deliver = false;
  bool block_flush = false;
  bool block_destroy = false;
  bool in_deliver = false;
  int flushed = 0;
  int destroyed = 0;

  void release() {
    {
      std::lock_guard lock(mutex);
      block_deliver = false;
      block_flush = false;
      block_destroy = false;
    }
    changed.notify_all();
  }
  size_t delivered() {
    std::lock_guard lock(mutex);
    return events.size();
  }
  bool wait_in_deliver() {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, std::chrono::seconds(20), [&] { return in_deliver; });
  }
};

std::unique_ptr<Outlet> recording_outlet(Recorder& recorder, OutletOptions options) {
  auto sink = std::make_unique<NiceMock<MockSink>>();
  ON_CALL(*sink, deliver(_, _)).WillByDefault(Invoke([&recorder](const Delivery& d, uint64_t) {
    std::unique_lock lock(recorder.mutex);
    recorder.in_deliver = true;
    recorder.changed.notify_all();
    recorder.changed.wait(lock, [&] { return !recorder.block_deliver; });
    recorder.in_deliver = false;
    for (const auto& event : d.events) recorder.events.emplace_back(event.json);
    recorder.changed.notify_all();
    return DeliveryResult{};
  }));
  ON_CALL(*sink, flush(_)).WillByDefault(Invoke([&recorder](uint64_t) {
    std::unique_lock lock(recorder.mutex);
    recorder.changed.wait(lock, [&] { return !recorder.block_flush; });
    ++recorder.flushed;
    return DeliveryResult{};
  }));
  ON_CALL(*sink, destroy()).WillByDefault(Invoke([&recorder] {
    std::unique_lock lock(recorder.mutex);
    recorder.changed.wait(lock, [&] { return !recorder.block_destroy; });
    ++recorder.destroyed;
  }));
  return std::make_unique<Outlet>(std::move(sink), std::move(options));
}

Pipeline one_outlet_pipeline(Recorder& recorder, OutletOptions options) {
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(recording_outlet(recorder, std::move(options)));
  return Pipeline(std::move(outlets), PipelineOptions{});
}

TEST(LifecycleEnd, InvokeDeadlineIsTheBudgetCappedByTheFunctionDeadline) {
  LifecycleOptions options;
  options.invoke_budget_ms = 100;
  options.invoke_margin_ms = 50;
  LifecycleEvent event;
  event.deadline_ms = 1'000'000;
  EXPECT_EQ(Lifecycle::invoke_deadline(event, 500'000, options).unix_ms(), 500'100u);
  EXPECT_EQ(Lifecycle::invoke_deadline(event, 999'900, options).unix_ms(), 999'950u)
      << "deadline - margin";
  EXPECT_EQ(Lifecycle::invoke_deadline(event, 999'990, options).unix_ms(), 999'990u)
      << "never before now";
  event.deadline_ms = 0;  // unknown: the budget alone
  EXPECT_EQ(Lifecycle::invoke_deadline(event, 500'000, options).unix_ms(), 500'100u);
}

// `end`: the lifecycle waits for this invocation's platform.runtimeDone, delivers everything
// held, and only then calls next. The budget is generous, so only the wait can order this.
TEST(LifecycleEnd, WaitsForRuntimeDoneAndDeliversBeforeNext) {
  Recorder recorder;
  Pipeline pipeline = one_outlet_pipeline(recorder, flushing(FlushMode::kEnd));
  ASSERT_TRUE(pipeline.flushes_at_invocation_end());

  StrictMock<MockExtensionsApi> api;
  std::atomic<bool> runtime_done_sent{false};
  size_t delivered_at_second_next = 0;
  std::thread function;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        // The function runs after INVOKE is released: its logs, then (a little later, which a
        // lifecycle that did not wait would use to call next early) its runtimeDone.
        function = std::thread([&] {
          pipeline.consume(make_batch(3));
          std::this_thread::sleep_for(std::chrono::milliseconds(30));
          runtime_done_sent = true;
          pipeline.consume(runtime_done_for("req-1"));
        });
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        EXPECT_TRUE(runtime_done_sent.load());
        delivered_at_second_next = recorder.delivered();
        return shutdown_event(5000);
      }));
  LifecycleOptions options;
  options.invoke_budget_ms = 20000;
  options.shutdown_quiet_ms = 10;
  Lifecycle lifecycle(api, pipeline, options);
  EXPECT_EQ(lifecycle.run(), 0);
  function.join();
  EXPECT_EQ(delivered_at_second_next, 4u) << "the logs and the runtimeDone, before next";
  EXPECT_EQ(pipeline.outlets()[0]->counters().deferred, 0u);
}

// A sink that blocks cannot hold the invocation past the budget: next is called while the sink
// is still stuck in its delivery, and the outlet counts the events as deferred.
TEST(LifecycleEnd, ABlockedSinkNeverHoldsTheInvocationBeyondTheBudget) {
  Recorder recorder;
  recorder.block_deliver = true;
  Pipeline pipeline = one_outlet_pipeline(recorder, flushing(FlushMode::kEnd));

  StrictMock<MockExtensionsApi> api;
  bool sink_blocked_at_next = false;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        pipeline.consume(make_batch(2));
        pipeline.consume(runtime_done_for("req-1"));
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        // The outlet thread may not have reached the sink yet on a loaded machine: wait for it.
        const bool reached = recorder.wait_in_deliver();
        {
          std::lock_guard lock(recorder.mutex);
          sink_blocked_at_next = reached && recorder.block_deliver;
        }
        recorder.release();
        return shutdown_event(5000);
      }));
  LifecycleOptions options;
  options.invoke_budget_ms = 150;
  options.shutdown_quiet_ms = 10;
  Lifecycle lifecycle(api, pipeline, options);
  EXPECT_EQ(lifecycle.run(), 0);
  EXPECT_TRUE(sink_blocked_at_next) << "next was called while the sink still blocked";
  const OutletCounters c = pipeline.outlets()[0]->counters();
  EXPECT_EQ(c.deferred, 3u);
  EXPECT_EQ(c.delivered, 3u) << "delivered in the background, then at shutdown";
}

// Without a platform.runtimeDone (telemetry lost, or a crash), next still comes at the budget.
TEST(LifecycleEnd, AMissingRuntimeDoneCostsAtMostTheBudget) {
  Recorder recorder;
  Pipeline pipeline = one_outlet_pipeline(recorder, flushing(FlushMode::kEnd));
  StrictMock<MockExtensionsApi> api;
  size_t delivered_at_second_next = 0;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        pipeline.consume(make_batch(2));
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        // flush_until ran at the budget: what was there is delivered (the sink is fast) or at
        // least released; nothing is held back for a runtimeDone that never comes.
        EXPECT_TRUE(testing::eventually([&] { return recorder.delivered() == 2; }));
        delivered_at_second_next = recorder.delivered();
        return shutdown_event(5000);
      }));
  LifecycleOptions options;
  options.invoke_budget_ms = 100;
  options.shutdown_quiet_ms = 10;
  Lifecycle lifecycle(api, pipeline, options);
  EXPECT_EQ(lifecycle.run(), 0);
  EXPECT_EQ(delivered_at_second_next, 2u);
}

// When no telemetry can come (subscription refused), `end` does not wait at all: a budget of a
// minute would otherwise hold the invocation for that minute.
TEST(LifecycleEnd, NoWaitWhenNoTelemetryIsExpected) {
  Recorder recorder;
  Pipeline pipeline = one_outlet_pipeline(recorder, flushing(FlushMode::kEnd));
  StrictMock<MockExtensionsApi> api;
  EXPECT_CALL(api, next()).WillOnce(Return(invoke("req-1"))).WillOnce(Return(shutdown_event(5000)));
  LifecycleOptions options;
  options.invoke_budget_ms = 60000;
  options.telemetry_expected = false;
  options.shutdown_quiet_ms = 10;
  Lifecycle lifecycle(api, pipeline, options);
  const auto started = std::chrono::steady_clock::now();
  EXPECT_EQ(lifecycle.run(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
}

// next-invoke, periodic and continuous never hold an invocation: with a budget of a minute and
// no runtimeDone, next comes at once (the test would take minutes otherwise), and only
// next-invoke releases at the INVOKE.
TEST(LifecycleModes, OtherModesDoNotWaitForRuntimeDone) {
  for (const FlushMode mode :
       {FlushMode::kNextInvoke, FlushMode::kPeriodic, FlushMode::kContinuous}) {
    SCOPED_TRACE(static_cast<int>(mode));
    Recorder recorder;
    recorder.block_deliver = false;
    Pipeline pipeline =
        one_outlet_pipeline(recorder, flushing(mode, mode == FlushMode::kPeriodic ? 60000 : 0));
    EXPECT_FALSE(pipeline.flushes_at_invocation_end());
    StrictMock<MockExtensionsApi> api;
    EXPECT_CALL(api, next())
        .WillOnce(Invoke([&] {
          pipeline.consume(make_batch(2));
          return invoke("req-1");
        }))
        .WillOnce(Invoke([&] {
          if (mode == FlushMode::kPeriodic) {
            EXPECT_EQ(recorder.delivered(), 0u) << "the period (a minute) has not come";
          } else {
            EXPECT_TRUE(testing::eventually([&] { return recorder.delivered() == 2; }));
          }
          return shutdown_event(5000);
        }));
    LifecycleOptions options;
    options.invoke_budget_ms = 60000;
    options.shutdown_quiet_ms = 10;
    Lifecycle lifecycle(api, pipeline, options);
    const auto started = std::chrono::steady_clock::now();
    EXPECT_EQ(lifecycle.run(), 0);
    EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::seconds(30));
    EXPECT_EQ(recorder.delivered(), 2u) << "shutdown delivers the rest";
  }
}

// Several `end` sinks are flushed in parallel: one blocked sink does not keep the other from
// delivering before next.
TEST(LifecycleEnd, SinksAreFlushedInParallel) {
  Recorder stuck;
  stuck.block_deliver = true;
  Recorder fast;
  std::vector<std::unique_ptr<Outlet>> outlets;
  outlets.push_back(recording_outlet(stuck, flushing(FlushMode::kEnd)));
  outlets.push_back(recording_outlet(fast, flushing(FlushMode::kEnd)));
  Pipeline pipeline(std::move(outlets), PipelineOptions{});
  StrictMock<MockExtensionsApi> api;
  size_t fast_at_next = 0;
  EXPECT_CALL(api, next())
      .WillOnce(Invoke([&] {
        pipeline.consume(make_batch(4));
        pipeline.consume(runtime_done_for("req-1"));
        return invoke("req-1");
      }))
      .WillOnce(Invoke([&] {
        fast_at_next = fast.delivered();
        stuck.release();
        return shutdown_event(5000);
      }));
  LifecycleOptions options;
  options.invoke_budget_ms = 300;
  options.shutdown_quiet_ms = 10;
  Lifecycle lifecycle(api, pipeline, options);
  EXPECT_EQ(lifecycle.run(), 0);
  EXPECT_EQ(fast_at_next, 5u);
  EXPECT_EQ(stuck.delivered(), 5u);
}

// One next-invoke outlet, and a Lambda whose first `next` brings two events, then SHUTDOWN
// with a deadline `in_ms` away: what the shutdown tests share.
struct ShutdownScene {
  explicit ShutdownScene(int64_t in_ms)
      : pipeline(one_outlet_pipeline(recorder, flushing(FlushMode::kNextInvoke))) {
    EXPECT_CALL(api, next()).WillOnce(Invoke([this, in_ms] {
      pipeline.consume(make_batch(2));
      LifecycleEvent event = shutdown_event(in_ms);
      deadline = static_cast<uint64_t>(event.deadline_ms);
      return event;
    }));
    options.shutdown_quiet_ms = 10;
    options.shutdown_margin_ms = 150;
  }
  int run() { return Lifecycle(api, pipeline, options).run(); }

  Recorder recorder;
  Pipeline pipeline;
  StrictMock<MockExtensionsApi> api;
  LifecycleOptions options;
  uint64_t deadline = 0;  // the SHUTDOWN event's, once next returned it
};

// The shutdown contract: after the deliveries, each sink is flushed once and then destroyed once,
// before run() returns.
TEST(LifecycleShutdown, FlushesThenDestroysEverySinkOnce) {
  ShutdownScene scene(5000);
  EXPECT_EQ(scene.run(), 0);
  std::lock_guard lock(scene.recorder.mutex);
  EXPECT_EQ(scene.recorder.events.size(), 2u);
  EXPECT_EQ(scene.recorder.flushed, 1);
  EXPECT_EQ(scene.recorder.destroyed, 1);
}

// A flush that hangs is left behind at the end of the close phase: its sink is not destroyed, and
// the shutdown still ends before deadlineMs minus the margin, without the watchdog.
TEST(LifecycleShutdown, AHangingFlushIsLeftBehindAndItsSinkNotDestroyed) {
  ShutdownScene scene(600);
  scene.recorder.block_flush = true;
  std::atomic<bool> overran{false};
  scene.options.on_shutdown_overrun = [&] { overran = true; };
  EXPECT_EQ(scene.run(), 0);
  EXPECT_LT(now_unix_ms(), scene.deadline - 150 + 50) << "returned by about the exit time";
  EXPECT_FALSE(overran.load());
  {
    std::lock_guard lock(scene.recorder.mutex);
    EXPECT_EQ(scene.recorder.events.size(), 2u) << "delivered before the sink's flush hung";
    EXPECT_EQ(scene.recorder.destroyed, 0) << "never destroyed while its flush runs";
  }
  scene.recorder.release();  // the pipeline's destructor waits for the flush
}

// Shutdown with a sink that hangs on the main thread (here in destroy): the watchdog ends the
// shutdown at deadlineMs minus the margin; in the process that exits 0.
TEST(LifecycleShutdown, AHangingSinkCannotHoldTheProcessPastTheMargin) {
  ShutdownScene scene(600);
  scene.recorder.block_destroy = true;
  std::atomic<uint64_t> overrun_at{0};
  scene.options.on_shutdown_overrun = [&] {
    overrun_at = now_unix_ms();
    scene.recorder.release();  // in the process this is _Exit(0); here the test lets it go
  };
  EXPECT_EQ(scene.run(), 0);
  ASSERT_NE(overrun_at.load(), 0u) << "only the watchdog can release the hanging destroy";
  EXPECT_GE(overrun_at.load(), scene.deadline - 150) << "not before the exit time";
  EXPECT_EQ(scene.recorder.delivered(), 2u) << "delivered before the sink's destroy hung";
}

TEST(LifecycleShutdown, ADeadlineAlreadyPastStillWritesTheSummaryExactlyOnce) {
  ShutdownScene scene(-1000);
  std::atomic<bool> overran{false};
  scene.options.on_shutdown_overrun = [&] { overran = true; };  // the process would _Exit here
  std::vector<std::string> lines;
  {
    const testing::LogCapture capture("relay.lifecycle");
    EXPECT_EQ(scene.run(), 0);
    lines = capture.lines();
  }
  // Both the watchdog and the shutdown path reach the end; one summary line is written.
  const auto summaries = std::count_if(lines.begin(), lines.end(), [](const std::string& line) {
    return line.find(" summary {") != std::string::npos;
  });
  EXPECT_EQ(summaries, 1) << ::testing::PrintToString(lines);
}

// Managed Instances: no INVOKE ever comes (the first next returns SHUTDOWN), the drain ends on
// the quiet period, and the shutdown delivers everything continuous flushing had not yet.
TEST(LifecycleShutdown, ManagedInstancesDrainOnTheQuietPeriod) {
  Recorder recorder;
  Pipeline pipeline = one_outlet_pipeline(recorder, flushing(FlushMode::kContinuous));
  StrictMock<MockExtensionsApi> api;
  EXPECT_CALL(api, next()).WillOnce(Invoke([&] {
    pipeline.consume(make_batch(3));
    pipeline.consume(report_for("req-9"));
    return shutdown_event(5000);
  }));
  LifecycleOptions options;
  options.managed_instances = true;
  options.shutdown_quiet_ms = 50;
  Lifecycle lifecycle(api, pipeline, options);
  EXPECT_EQ(lifecycle.run(), 0);
  EXPECT_EQ(recorder.delivered(), 4u);
  EXPECT_EQ(lifecycle.invocations(), 0u);
}

}  // namespace
}  // namespace relay
