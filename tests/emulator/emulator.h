#pragma once

// The Lambda side of an execution environment, for one external extension: the Extensions API
// and Telemetry API on 127.0.0.1:<ephemeral>, the extension launched as a child process as
// Lambda launches it, init, invocations with platform and function telemetry, freeze and thaw,
// and SHUTDOWN with a deadline; optionally as Lambda Managed Instances (concurrent invocations,
// SHUTDOWN-only extensions, schema 2025-01-29). See README.md in this folder.

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "events.h"
#include "telemetry_sender.h"

namespace relay::emu {

// A raw POST to the extension's telemetry listener, e.g. a malformed body.
struct RawPost {
  // Sent after the thaw that precedes INVOKE #n (0-based); n == invocations means just before
  // SHUTDOWN.
  int before_invocation = 0;
  std::string body;
  std::string content_type = "application/json";
};

struct Options {
  std::string extension_path;
  std::vector<std::string> args;
  std::map<std::string, std::string> env;  // added to the Lambda variables; PATH is inherited
  FunctionInfo function;

  int invocations = 3;
  int logs_per_invoke = 5;
  int log_bursts = 1;  // function logs come in this many bursts spread over runtime_ms
  // A burst: burst_events more function log lines, all at once as the handler starts, in
  // invocation 0 and then every burst_every-th one (0: invocation 0 only). Lambda buffers them
  // and sends them in maxItems/maxBytes batches; with the default max_queued_batches most of a
  // large burst is dropped by the platform (platform.logsDropped), so raise that too.
  int burst_events = 0;
  int burst_every = 0;
  LogFormat log_format = LogFormat::kText;
  // kPrettyReordered: every event pretty-printed with its keys reversed (a fault scenario).
  EventStyle event_style = EventStyle::kCompact;
  int runtime_ms = 20;  // simulated handler time: INVOKE released -> platform.runtimeDone
  int gap_ms = 0;       // time spent frozen between invocations
  int function_timeout_ms = 30000;
  int init_timeout_ms = 10000;
  int shutdown_ms = 2000;
  bool freeze = true;
  // Before releasing each INVOKE and the SHUTDOWN, seal the telemetry buffer, POST it and wait
  // for the answer: the extension then holds everything produced so far (platform.start of that
  // invocation included) when the event arrives. Lambda gives no such guarantee; tests of a
  // count-based flush policy need it. Moves the last platform.report before SHUTDOWN.
  bool settle_telemetry_before_events = false;
  bool extension_logs = true;  // the child's output lines become "extension" events

  // Lambda Managed Instances (lambda-protocol.md §4.14): AWS_LAMBDA_INITIALIZATION_TYPE and
  // initializationType "lambda-managed-instances"; register takes SHUTDOWN only (INVOKE is
  // refused with 403, as RIE-LMI does) and subscribe schema 2025-01-29 only; up to
  // `concurrency` invocations run at once with interleaved telemetry, no INVOKE event, no
  // platform.runtimeDone, reports with only durationMs and response spans, and no freeze.
  // between_invocations runs once, before SHUTDOWN; settle_telemetry_before_events applies to
  // SHUTDOWN only; gap_ms is each slot's pause between two of its invocations.
  bool managed_instances = false;
  int concurrency = 4;
  // Non-empty: platform.start, JSON function logs, runtimeDone and report carry tenantId.
  std::string tenant_id;

  // The child's raw output; empty passes it through to our own stdout/stderr.
  std::string stdout_path;
  std::string stderr_path;

  // Delivery to the listener. Production retries "with backoff"; RIE never retries.
  int post_retries = 3;
  int retry_backoff_ms = 50;
  int post_timeout_ms = 5000;
  size_t max_queued_batches = 64;
  bool keep_event_texts = true;  // Summary::subscriber_events; turn off for huge loads

  // Fault injection.
  bool telemetry_supported = true;  // false: subscribe answers 202 Telemetry.NotSupported
  int register_status = 0;          // non-zero: every register gets this status
  int subscribe_status = 0;         // non-zero: every subscribe gets this status (ValidationError)
  // A subscribe asking for one of these schema versions is answered 400 ValidationError naming
  // it, as Lambda refuses a version it does not support (schema negotiation).
  std::vector<std::string> refused_schema_versions;
  std::vector<RawPost> raw_posts;
  // Runs after invocation n-1 while the extension is frozen; n == invocations before SHUTDOWN.
  std::function<void(int next_invocation)> between_invocations;
};

struct Percentiles {
  size_t count = 0;
  double p50 = 0;
  double p99 = 0;
  double max = 0;

  static Percentiles of(std::vector<double> samples);
};

struct ErrorCall {
  std::string path;        // "init/error" or "exit/error"
  std::string error_type;  // Lambda-Extension-Function-Error-Type
  std::string body;
};

struct Summary {
  // Init.
  bool registered = false;
  std::string extension_name;
  std::vector<std::string> registered_events;
  bool init_ok = false;
  // "timeout", "Extension.Crash", "Extension.InitError", "Extension.LaunchError" or empty.
  std::string init_error;
  int subscribe_status = 0;  // last answer to PUT /telemetry, 0 if never called
  std::string schema_version;
  std::vector<std::string> subscribe_schemas;  // schemaVersion of every subscribe, in order
  std::vector<std::string> subscribed_types;
  Buffering buffering;

  // Invocations.
  bool managed_instances = false;
  int invocations_completed = 0;
  std::string fatal_error;  // "Extension.Crash" or "Sandbox.Timeout" outside init
  std::vector<ErrorCall> error_calls;
  std::vector<int> raw_post_statuses;  // per RawPost in order; -1 transport error, -2 no listener

  int freezes = 0;        // times the extension was seen stopped (state T) after SIGSTOP
  int max_in_flight = 0;  // most invocations running at once (1 unless managed_instances)

  // Exit.
  bool shutdown_sent = false;
  bool exited = false;
  int exit_code = -1;
  int exit_signal = 0;
  bool killed = false;  // SIGKILLed by the emulator (deadline, or init failure)
  bool exited_before_deadline = false;

  // Timings in ms; -1 when the phase did not happen.
  double register_ms = -1;                     // process start -> register
  double init_ms = -1;                         // process start -> first next
  double shutdown_duration_ms = -1;            // SHUTDOWN released -> process gone
  Percentiles invoke_to_next_ms;               // INVOKE released -> extension's next; none on LMI
  std::vector<double> invoke_to_next_each_ms;  // the same, per invocation in order
  Percentiles post_latency_ms;                 // telemetry POST -> listener's answer

  // The extension's resource usage (wait4 on the child).
  double cpu_user_ms = 0;
  double cpu_system_ms = 0;
  long max_rss_kb = 0;
  // Resident memory at quiet moments (0 when not sampled): when the extension first called
  // next (init done), and each time it was frozen between invocations (SIGSTOPped, so nothing
  // moves while it is read).
  long rss_after_init_kb = 0;
  long rss_anon_after_init_kb = 0;
  std::vector<long> frozen_rss_kb;
  std::vector<long> frozen_rss_anon_kb;
  // The JSON of the last "summary {...}" line the extension wrote (telemetry-relay logs its
  // loss accounting so at shutdown); empty when it wrote none.
  std::string extension_summary;

  // Telemetry.
  std::map<std::string, uint64_t> generated_by_type;  // everything the platform produced
  std::map<std::string, uint64_t> delivered_by_type;  // in POSTs answered 2xx
  uint64_t events_for_subscriber = 0;                 // matching the subscribed types
  uint64_t events_delivered = 0;
  uint64_t bytes_delivered = 0;  // JSON of those events, as POSTed
  uint64_t posts_ok = 0;
  uint64_t posts_failed = 0;
  uint64_t post_retries = 0;
  uint64_t batches_dropped = 0;
  uint64_t events_dropped = 0;
  std::vector<size_t> batch_events;  // events per delivered POST, in order
  // Exact text of every event queued for the subscriber, in generation order.
  std::vector<std::string> subscriber_events;

  uint64_t events_generated() const;
  // The extension ran, completed every invocation and exited 0 on SHUTDOWN before the deadline.
  bool clean(int expected_invocations) const;
};

class Emulator {
 public:
  explicit Emulator(Options options);
  ~Emulator();
  Emulator(const Emulator&) = delete;
  Emulator& operator=(const Emulator&) = delete;

  // Runs init, the invocations and shutdown; call once. Throws only on setup errors (e.g. the
  // API port cannot be bound); the extension's failures are reported in the Summary.
  Summary run();

  // Valid while run() is in progress (e.g. from between_invocations).
  uint16_t api_port() const;
  pid_t extension_pid() const;
  // SIGKILLs the extension now (e.g. from a test thread while it delivers): the running
  // invocation ends as Extension.Crash and run() returns. Another Emulator with the same env
  // (same RELAY_SPOOL_DIR) is then a new extension process in the same environment.
  void kill_extension();
  // POSTs `body` to the subscribed listener; the HTTP status, -1 on transport error, -2 when
  // nothing subscribed. Blocks while the extension is frozen.
  int post_to_listener(std::string_view body,
                       std::string_view content_type = "application/json") const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace relay::emu
