// ns per event of LambdaMapping::map() for one realistic invocation: platform.start, 10,000
// function lines (Node text format, JSON objects as Node's JSON logging writes them, or
// relay-bench's mix of both),
// runtimeDone and report, in batches of 1000 events (the host's default) or all at once.
// Run by hand: otlp_mapping_bench --benchmark_repetitions=5.

#include <benchmark/benchmark.h>

#include <algorithm>
#include <deque>
#include <string>
#include <vector>

#include "lambda_mapping.h"

namespace relay::otlp {
namespace {

constexpr int kLines = 10'000;
constexpr char kRequestId[] = "79b4f56e-95b1-4643-9700-2807f4e68189";

struct Invocation {
  std::deque<std::string> records;
  std::vector<LambdaEvent> events;

  void add(std::string_view type, std::string_view time, std::string record) {
    events.push_back({type, time, records.emplace_back(std::move(record))});
  }
};

enum class Lines { kText, kJson, kEmulator };

// relay-bench's lines (tests/emulator/events.cpp, --log-format mixed): text and JSON in turn;
// every other JSON line a nested object with arrays, a null and a 30-digit integer.
std::string emulator_line(int i, const std::string& id) {
  const std::string n = std::to_string(i);
  if (i % 2 == 0) {
    return R"("2024-05-14T09:12:04.114Z\t)" + id + R"(\tINFO\tline )" + n +
           R"( of invocation 1: say \"hi\" C:\\path\\to")";
  }
  const std::string head =
      R"({"timestamp":"2024-05-14T09:12:04.114Z","level":"INFO","requestId":")" + id +
      R"(","message":)";
  if (i % 4 == 1) {
    return head + R"({"order":{"id":"o-)" + n +
           R"(","items":[{"sku":"A","qty":2},{"sku":"\u00e9\"q\"","qty":-1}],"meta":null},)" +
           R"("big":123456789012345678901234567890,"ratio":1.5e-7,"ok":true}})";
  }
  return head + R"("line )" + n + " of invocation 1: h\xC3\xA9llo w\xC3\xB6rld\"}";
}

Invocation invocation(Lines lines) {
  Invocation inv;
  const std::string id = kRequestId;
  inv.add(
      "platform.start", "2024-05-14T09:12:04.110Z",
      R"({"requestId":")" + id +
          R"(","version":"$LATEST","tracing":{"spanId":"24cd7d670fa455f0","type":"X-Amzn-Trace-Id","value":"Root=1-6352a70e-1e2c502e358361800241fd45;Parent=35465b3a9e2f7c6a;Sampled=1"}})");
  for (int i = 0; i < kLines; ++i) {
    std::string n = std::to_string(i);
    if (lines == Lines::kEmulator) {
      inv.add("function", "2024-05-14T09:12:04.115Z", emulator_line(i, id));
    } else if (lines == Lines::kJson) {
      inv.add("function", "2024-05-14T09:12:04.115Z",
              R"({"timestamp":"2024-05-14T09:12:04.114Z","level":"INFO","requestId":")" + id +
                  R"(","message":"processed order o-)" + n + R"( in 3 ms"})");
    } else {
      inv.add("function", "2024-05-14T09:12:04.115Z",
              R"("2024-05-14T09:12:04.114Z\t)" + id + R"(\tINFO\tprocessed order o-)" + n +
                  R"( in 3 ms\n")");
    }
  }
  inv.add(
      "platform.runtimeDone", "2024-05-14T09:12:04.121Z",
      R"({"requestId":")" + id +
          R"(","status":"success","spans":[{"name":"responseLatency","start":"2024-05-14T09:12:04.110Z","durationMs":8.2},{"name":"responseDuration","start":"2024-05-14T09:12:04.118Z","durationMs":0.3},{"name":"runtimeOverhead","start":"2024-05-14T09:12:04.119Z","durationMs":1.4}],"metrics":{"durationMs":10.6,"producedBytes":4}})");
  inv.add(
      "platform.report", "2024-05-14T09:12:04.140Z",
      R"({"requestId":")" + id +
          R"(","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":30,"memorySizeMB":256,"maxMemoryUsedMB":71}})");
  return inv;
}

// state.range(0): events per map() call. The host delivers batches of RELAY_TELEMETRY_MAX_ITEMS
// (default 1000) and the sink clears the output after encoding each; 0 maps all in one call.
void run(benchmark::State& state, Lines lines) {
  const Invocation inv = invocation(lines);
  const size_t batch_size = state.range(0) == 0 ? inv.events.size() : state.range(0);
  std::vector<std::vector<LambdaEvent>> batches;
  for (size_t i = 0; i < inv.events.size(); i += batch_size) {
    batches.emplace_back(inv.events.begin() + i,
                         inv.events.begin() + std::min(i + batch_size, inv.events.size()));
  }
  MappingOptions options;
  options.function_name = "orders-api";
  MappingOutput out;
  for (auto _ : state) {
    LambdaMapping mapping(options);  // fresh state: the invocation is new every time
    for (const auto& batch : batches) {
      out.clear();
      mapping.map(batch, 1'800'000'000'000'000'000, out);
      benchmark::DoNotOptimize(out.logs.data());
    }
  }
  // Seconds per event, printed with an SI prefix: "180n" is 180 ns.
  state.counters["per_event"] = benchmark::Counter(
      static_cast<double>(inv.events.size()),
      benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
}

void BM_MapTextLines(benchmark::State& state) { run(state, Lines::kText); }
void BM_MapJsonLines(benchmark::State& state) { run(state, Lines::kJson); }
void BM_MapEmulatorLines(benchmark::State& state) { run(state, Lines::kEmulator); }
BENCHMARK(BM_MapTextLines)->ArgName("batch")->Arg(1000)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MapJsonLines)->ArgName("batch")->Arg(1000)->Arg(0)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MapEmulatorLines)->ArgName("batch")->Arg(1000)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace relay::otlp

BENCHMARK_MAIN();
