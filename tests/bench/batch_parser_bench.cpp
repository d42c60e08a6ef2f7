// parse_batch over a Telemetry API body the size Lambda sends at the default maxBytes (256 KiB).
#include <benchmark/benchmark.h>
#include <simdjson.h>

#include <string>

#include "batch_parser.h"

namespace {

// One invoke's worth of events (platform + text and JSON function logs), repeated to size.
std::string make_body(size_t target_bytes) {
  std::string body = "[";
  for (size_t invoke = 0; body.size() < target_bytes; ++invoke) {
    const std::string id = "79b4f56e-95b1-4643-9700-" + std::to_string(100000000000 + invoke);
    const std::string events[] = {
        R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":")" +
            id + R"(","version":"$LATEST"}})",
        R"({"time":"2024-05-14T09:12:04.115Z","type":"function","record":"2024-05-14T09:12:04.114Z\t)" +
            id +
            R"(\tINFO\tHello from function handler { event: {\"path\":\"/orders\",\"id\":42} }"})",
        R"({"time":"2024-05-14T09:12:04.116Z","type":"function","record":{"timestamp":"2024-05-14T09:12:04.116Z","level":"INFO","requestId":")" +
            id +
            R"(","message":{"order":{"id":"o-1","items":[{"sku":"A","qty":2},{"sku":"B","qty":1}],"meta":null},"ok":true}}})",
        R"({"time":"2024-05-14T09:12:04.117Z","type":"function","record":"[INFO]\t2024-05-14T09:12:04.117Z\t)" +
            id + R"(\tstored order o-1 in 3.2 ms\n"})",
        R"({"time":"2024-05-14T09:12:04.118Z","type":"function","record":{"timestamp":"2024-05-14T09:12:04Z","level":"ERROR","message":"payment declined","logger":"root","requestId":")" +
            id +
            R"(","errorType":"PaymentError","stackTrace":["  File \"/var/task/app.py\", line 12, in handler"]}})",
        R"({"time":"2024-05-14T09:12:04.121Z","type":"platform.runtimeDone","record":{"requestId":")" +
            id +
            R"(","status":"success","spans":[{"name":"responseLatency","start":"2024-05-14T09:12:04.110Z","durationMs":8.2},{"name":"responseDuration","start":"2024-05-14T09:12:04.118Z","durationMs":0.3},{"name":"runtimeOverhead","start":"2024-05-14T09:12:04.119Z","durationMs":1.4}],"metrics":{"durationMs":10.6,"producedBytes":4}}})",
        R"({"time":"2024-05-14T09:12:04.140Z","type":"platform.report","record":{"requestId":")" +
            id +
            R"(","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":30,"memorySizeMB":256,"maxMemoryUsedMB":71},"spans":[{"name":"extensionOverhead","start":"2024-05-14T09:12:04.121Z","durationMs":19.1}]}})",
    };
    for (const std::string& event : events) {
      if (body.size() > 1) body += ',';
      body += event;
    }
  }
  body += "]";
  return body;
}

// The listener's case, by state.range(0): 0, a body valid as a whole (one validating pass); 1,
// one whose first event is invalid JSON, which sends the whole body down the per-event path;
// 2, a valid body whose first event holds a number beyond uint64 (simdjson's DOM refuses it, the
// exact validator then passes the whole body at once).
void BM_ParseBatch(benchmark::State& state) {
  std::string body = make_body(256 * 1024);
  if (state.range(0) == 1) body.replace(1, 1, "{\"record\":NaN},{");
  if (state.range(0) == 2) body.replace(1, 1, "{\"big\":123456789012345678901234567890,");
  const size_t invalid = state.range(0) == 1 ? 1 : 0;
  size_t events = 0;
  for (auto _ : state) {
    // The listener reads into a buffer already reserved with padding, so the copy is not timed.
    state.PauseTiming();
    std::string input;
    input.reserve(body.size() + simdjson::SIMDJSON_PADDING);
    input.assign(body);
    state.ResumeTiming();

    relay::ParseResult result = relay::parse_batch(std::move(input));
    if (!result.batch || result.invalid_events != invalid) {
      state.SkipWithError(result.error.message.c_str());
      break;
    }
    // Touch what an outlet reads first, so nothing is optimised away.
    size_t touched = 0;
    for (const relay::TelemetryEvent& event : result.batch->events) {
      touched += event.type.size() + event.record.size();
    }
    benchmark::DoNotOptimize(touched);
    events = result.batch->events.size();
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body.size()));
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(events));
  state.counters["body_bytes"] = double(body.size());
  state.counters["events"] = double(events);
}
BENCHMARK(BM_ParseBatch)->Arg(0)->Arg(1)->Arg(2)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
