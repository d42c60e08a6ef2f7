// Replaying one spooled delivery (256 KiB of telemetry, the default maxBytes): read the file back
// and hand the sink its events. state.range(0): 0, the events found by parsing the JSON again
// (format 1, what the outlet did before); 1, the events rebuilt from the offsets stored in the
// file (format 2). Both include the read, its checksum and the copy into the delivery.
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "batch_parser.h"
#include "spool.h"

namespace {

namespace fs = std::filesystem;

// Platform events and text and JSON function logs, repeated to size.
std::string make_body(size_t target_bytes) {
  std::string body = "[";
  for (size_t n = 0; body.size() < target_bytes; ++n) {
    const std::string id = "79b4f56e-95b1-4643-9700-" + std::to_string(100000000000 + n);
    const std::string events[] = {
        R"({"time":"2024-05-14T09:12:04.110Z","type":"platform.start","record":{"requestId":")" +
            id + R"(","version":"$LATEST"}})",
        R"({"time":"2024-05-14T09:12:04.115Z","type":"function","record":"2024-05-14T09:12:04.114Z\t)" +
            id + R"(\tINFO\tHello from function handler { event: {\"path\":\"/orders\"} }"})",
        R"({"time":"2024-05-14T09:12:04.116Z","type":"function","record":{"level":"INFO","requestId":")" +
            id + R"(","message":{"order":{"id":"o-1","items":[{"sku":"A","qty":2}]},"ok":true}}})",
        R"({"time":"2024-05-14T09:12:04.140Z","type":"platform.report","record":{"requestId":")" +
            id + R"(","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":30}}})",
    };
    for (const std::string& event : events) {
      if (body.size() > 1) body += ',';
      body += event;
    }
  }
  return body + "]";
}

// The outlet's view of a replayed delivery.
struct Replayed {
  std::string json;
  std::vector<relay::TelemetryEvent> events;
};

// Before: what the outlet's delivery_from_spool did with a format-1 file's JSON.
bool by_parsing(relay::SpooledDelivery&& entry, Replayed* out) {
  relay::ParseResult parsed = relay::parse_batch(entry.json);
  if (!parsed.batch) return false;
  out->json = std::move(entry.json);
  const char* body = parsed.batch->body->data();
  out->events.reserve(parsed.batch->events.size());
  const auto rebase = [](std::string_view part, std::string_view from, const char* to) {
    return part.empty() ? std::string_view{}
                        : std::string_view(to + (part.data() - from.data()), part.size());
  };
  for (const relay::TelemetryEvent& event : parsed.batch->events) {
    const char* base = out->json.data() + (event.json.data() - body);
    out->events.push_back(relay::TelemetryEvent{{base, event.json.size()},
                                                rebase(event.type, event.json, base),
                                                rebase(event.time, event.json, base),
                                                rebase(event.record, event.json, base)});
  }
  return true;
}

// After: views from the stored offsets.
bool by_offsets(relay::SpooledDelivery&& entry, Replayed* out) {
  out->json = std::move(entry.json);
  out->events.reserve(entry.offsets.size());
  for (const relay::SpooledEvent& event : entry.offsets) out->events.push_back(event.in(out->json));
  return true;
}

void BM_SpoolReplay(benchmark::State& state) {
  const fs::path dir =
      fs::temp_directory_path() / ("relay-spool-bench-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  const std::string body = make_body(256 * 1024);
  relay::ParseResult parsed = relay::parse_batch(body);
  if (!parsed.batch) {
    state.SkipWithError(parsed.error.message.c_str());
    return;
  }
  size_t events = 0;
  {
    relay::Spool spool(relay::SpoolLimits{dir.string(), 64u << 20, 16});
    uint64_t seq = 0;
    std::string error;
    // The parsed body is "[e1,...]" with the events' views into it, as a Delivery holds them.
    if (!spool.put("0123456789abcdef0123456789abcdef", *parsed.batch->body, parsed.batch->events,
                   &error, &seq)) {
      state.SkipWithError(error.c_str());
      return;
    }
    const auto replay = state.range(0) == 0 ? by_parsing : by_offsets;
    for (auto _ : state) {
      std::optional<relay::SpooledDelivery> entry = spool.read(seq);
      Replayed replayed;
      if (!entry || !replay(std::move(*entry), &replayed)) {
        state.SkipWithError("replay failed");
        break;
      }
      benchmark::DoNotOptimize(replayed.events.data());
      events = replayed.events.size();
    }
  }
  fs::remove_all(dir);
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(body.size()));
  state.SetItemsProcessed(int64_t(state.iterations()) * int64_t(events));
  state.counters["events"] = double(events);
}
BENCHMARK(BM_SpoolReplay)->ArgName("offsets")->Arg(0)->Arg(1)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
