// ns per log record for the OTLP encoders: 1000 typical records (a ~90-byte body, 2 attributes,
// trace and span ids, two timestamps, severity) under a Lambda-like resource.
//   otlp_encoding_bench --benchmark_repetitions=5 --benchmark_report_aggregates_only=true

#include <benchmark/benchmark.h>

#include "json_encoder.h"
#include "protobuf_encoder.h"

namespace {

using namespace relay::otlp;

constexpr int kRecords = 1000;

struct Workload {
  StringStore store;
  Resource resource;
  LogsRequest request;

  Workload() {
    resource.attributes = {
        {"service.name", AnyValue::string("checkout-fn")},
        {"cloud.provider", AnyValue::string("aws")},
        {"cloud.platform", AnyValue::string("aws_lambda")},
        {"cloud.region", AnyValue::string("eu-west-1")},
        {"cloud.account.id", AnyValue::string("123456789012")},
        {"faas.name", AnyValue::string("checkout-fn")},
        {"faas.version", AnyValue::string("$LATEST")},
        {"faas.instance", AnyValue::string("2026/11/29/[$LATEST]0123456789abcdef0123456789abcdef")},
        {"faas.max_memory", AnyValue::integer(134217728)},
    };
    request.resource = &resource;
    request.scope = {"telemetry-relay", "1.0.0"};
    TraceId trace{};
    SpanId span{};
    for (int i = 0; i < kRecords; ++i) {
      trace[15] = static_cast<uint8_t>(i);
      span[7] = static_cast<uint8_t>(i + 1);
      trace[0] = span[0] = 0x5a;
      LogRecord r;
      r.time_unix_nano = 1764400000000000000 + static_cast<uint64_t>(i) * 1000003;
      r.observed_time_unix_nano = r.time_unix_nano + 250000;
      r.severity_number = 9;
      r.severity_text = "INFO";
      // ~90 bytes, with a quote to escape in JSON as real log lines often have.
      r.body = AnyValue::string(store.keep("Processed order " + std::to_string(100000 + i) +
                                           " for customer \"c-42\" in 12.5 ms; 3 items, total "
                                           "EUR 99.90"));
      r.attributes = {{"faas.invocation_id", AnyValue::string("6f1c2d3e-4b5a-4c6d-8e7f-"
                                                              "0123456789ab")},
                      {"log.iostream", AnyValue::string("stdout")}};
      r.trace_id = trace;
      r.span_id = span;
      r.flags = 1;
      request.records.push_back(r);
    }
  }
};

template <void (*Encode)(const LogsRequest&, std::string&)>
void encode(benchmark::State& state) {
  const Workload workload;
  std::string out;
  for (auto _ : state) {
    Encode(workload.request, out);
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  // CPU seconds per record: shown with an SI prefix, "71n" is 71 ns.
  state.counters["per_record"] = benchmark::Counter(
      kRecords, benchmark::Counter::kIsIterationInvariantRate | benchmark::Counter::kInvert);
  state.counters["bytes"] = static_cast<double>(out.size());
}

void BM_LogsProtobuf(benchmark::State& state) { encode<encode_protobuf>(state); }
void BM_LogsJson(benchmark::State& state) { encode<encode_json>(state); }
BENCHMARK(BM_LogsProtobuf);
BENCHMARK(BM_LogsJson);

}  // namespace

BENCHMARK_MAIN();
