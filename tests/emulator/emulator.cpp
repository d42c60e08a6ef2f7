#include "emulator.h"

#include <Poco/Exception.h>
#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/NullStream.h>
#include <Poco/StreamCopier.h>
#include <Poco/ThreadPool.h>
#include <Poco/URI.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <deque>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <set>
#include <thread>

#include "child_process.h"
#include "http_util.h"

namespace relay::emu {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::string_view kRegisterPath = "/2020-01-01/extension/register";
constexpr std::string_view kNextPath = "/2020-01-01/extension/event/next";
constexpr std::string_view kInitErrorPath = "/2020-01-01/extension/init/error";
constexpr std::string_view kExitErrorPath = "/2020-01-01/extension/exit/error";
constexpr std::string_view kTelemetryPath = "/2022-07-01/telemetry";

double ms_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}

bool contains(const std::vector<std::string>& items, std::string_view item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

struct Subscription {
  std::string schema_version;
  std::vector<std::string> types;
  Buffering buffering;
  uint16_t port = 0;
  std::string path = "/";
};

// Reads an optional integer field into `out`; a present but invalid one adds to `errors`.
template <typename T>
void read_range(const Poco::JSON::Object& object, const std::string& key, int64_t min, int64_t max,
                T& out, std::vector<std::string>& errors) {
  const Poco::Dynamic::Var value = object.get(key);
  if (value.isEmpty()) return;
  if (!value.isInteger() || value.convert<int64_t>() < min || value.convert<int64_t>() > max) {
    errors.push_back("buffering." + key + " must be an integer in [" + std::to_string(min) + ", " +
                     std::to_string(max) + "]");
    return;
  }
  out = static_cast<T>(value.convert<int64_t>());
}

// The Telemetry API's validation; returns the joined errors, empty when `out` is valid.
std::string validate_subscription(const std::string& body, bool managed_instances,
                                  Subscription& out) {
  Poco::JSON::Object::Ptr object;
  try {
    object = Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
  } catch (const Poco::Exception&) {
    return "request body is not a JSON object";
  }
  std::vector<std::string> errors;
  try {
    static const std::set<std::string> kSchemas{"2022-07-01", "2022-12-13", "2025-01-29"};
    out.schema_version = object->optValue<std::string>("schemaVersion", "");
    if (managed_instances && out.schema_version != "2025-01-29") {
      // RIE-LMI's JSON schema allows only 2025-01-29; naming the refused value lets an extension
      // that negotiates see why and retry.
      errors.push_back("schemaVersion " + json_quote(out.schema_version) +
                       " is not supported on Lambda Managed Instances; use 2025-01-29");
    } else if (!kSchemas.contains(out.schema_version)) {
      errors.push_back("schemaVersion must be one of 2022-07-01, 2022-12-13, 2025-01-29");
    }

    const auto types = object->getArray("types");
    if (!types || types->size() == 0) {
      errors.push_back("types should not be empty");
    } else {
      for (size_t i = 0; i < types->size(); ++i) {
        const std::string type = types->getElement<std::string>(static_cast<unsigned>(i));
        if (type != "platform" && type != "function" && type != "extension") {
          errors.push_back("invalid type " + type);
        } else if (!contains(out.types, type)) {
          out.types.push_back(type);
        }
      }
    }

    if (const auto buffering = object->getObject("buffering")) {
      read_range(*buffering, "maxItems", 1000, 10000, out.buffering.max_items, errors);
      read_range(*buffering, "maxBytes", 262144, 1048576, out.buffering.max_bytes, errors);
      read_range(*buffering, "timeoutMs", 25, 30000, out.buffering.timeout_ms, errors);
    }

    const auto destination = object->getObject("destination");
    if (!destination) {
      errors.push_back("destination is required");
    } else if (destination->optValue<std::string>("protocol", "") != "HTTP") {
      errors.push_back("destination.protocol must be HTTP (the emulator has no TCP delivery)");
    } else {
      const Poco::URI uri(destination->optValue<std::string>("URI", ""));
      if (uri.getScheme() != "http") errors.push_back("destination.URI scheme must be http");
      if (uri.getHost() != "sandbox.localdomain" && uri.getHost() != "sandbox") {
        errors.push_back("destination.URI host must be sandbox.localdomain");
      }
      out.port = uri.getSpecifiedPort();
      if (out.port == 0) errors.push_back("URI port is not provided");
      out.path = uri.getPathEtc().empty() ? "/" : uri.getPathEtc();
    }
  } catch (const Poco::Exception& e) {
    errors.push_back(e.displayText());
  }
  std::string joined;
  for (const auto& error : errors) joined += (joined.empty() ? "" : "; ") + error;
  return joined;
}

std::vector<std::string> split_features(const std::string& header) {
  std::vector<std::string> features;
  std::string current;
  for (char c : header + ",") {
    if (c == ',') {
      if (!current.empty()) features.push_back(current);
      current.clear();
    } else if (c != ' ') {
      current += c;
    }
  }
  return features;
}

}  // namespace

Percentiles Percentiles::of(std::vector<double> samples) {
  Percentiles result;
  result.count = samples.size();
  if (samples.empty()) return result;
  std::sort(samples.begin(), samples.end());
  // Nearest-rank percentiles.
  auto rank = [&](double q) {
    const auto index = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
    return samples[std::min(samples.size() - 1, index == 0 ? 0 : index - 1)];
  };
  result.p50 = rank(0.50);
  result.p99 = rank(0.99);
  result.max = samples.back();
  return result;
}

uint64_t Summary::events_generated() const {
  uint64_t total = 0;
  for (const auto& [type, count] : generated_by_type) total += count;
  return total;
}

bool Summary::clean(int expected_invocations) const {
  return init_ok && fatal_error.empty() && error_calls.empty() &&
         invocations_completed == expected_invocations && shutdown_sent && exited &&
         exit_code == 0 && exited_before_deadline;
}

namespace {

Options with_log_stream(Options options) {
  if (options.function.log_stream.empty()) {
    options.function.log_stream =
        make_log_stream(options.function.version, std::chrono::system_clock::now());
  }
  return options;
}

}  // namespace

struct Emulator::Impl {
  explicit Impl(Options opts)
      : options(with_log_stream(std::move(opts))),
        factory(options.function, options.managed_instances, options.event_style),
        log(options.keep_event_texts),
        expected_name(std::filesystem::path(options.extension_path).filename().string()) {}

  Summary run();

  // Lifecycle steps, on the run() thread.
  void start_server();
  bool launch();
  bool run_init();
  bool invoke(int index);
  void run_managed_invocations();
  bool managed_invoke(int index);
  void run_function(const std::string& request_id, int index);
  void between(int next_invocation);
  void shutdown();
  Summary finish();
  void freeze_extension();
  void thaw_extension();
  void resume_sender();
  void settle_telemetry();
  void send_raw_posts(int before_invocation);
  std::map<std::string, std::string> lambda_environment() const;

  // Extensions and Telemetry API, on server threads.
  void handle(Poco::Net::HTTPServerRequest& request, Poco::Net::HTTPServerResponse& response);
  // `arrived`: when the request reached its handler, before its body was read.
  Answer on_register(const std::string& name, const std::string& features, const std::string& body,
                     Clock::time_point arrived);
  void on_next(const std::string& id, Poco::Net::HTTPServerResponse& response,
               Clock::time_point arrived);
  Answer on_error_call(const std::string& id, const std::string& error_type,
                       const std::string& path, const std::string& body);
  Answer on_subscribe(const std::string& id, const std::string& body);
  std::optional<Answer> check_identifier_locked(const std::string& id) const;

  void emit(Event event);
  void emit_locked(Event event);
  bool subscribed_locked(std::string_view type) const;
  std::optional<Event> make_drop_event(uint64_t records, uint64_t bytes, const std::string& why);
  int post_to_listener(std::string_view body, std::string_view content_type) const;

  const Options options;
  const EventFactory factory;
  EventLog log;
  const std::string expected_name;

  // Declared before the server, which must stop before its pool goes away.
  Poco::ThreadPool pool{2, 32};
  std::unique_ptr<Poco::Net::HTTPServer> server;
  uint16_t port = 0;
  std::unique_ptr<ChildProcess> child;
  std::atomic<pid_t> live_pid{0};  // the child, for kill_extension() from other threads
  bool frozen = false;             // run() thread only
  std::string shutdown_reason = "spindown";
  std::vector<double> invoke_to_next_samples;

  mutable std::mutex mu;
  std::condition_variable cv;
  // Guarded by mu.
  bool closing = false;        // run() is returning: blocked `next` calls give up
  bool shutting_down = false;  // an exit from now on is not a crash
  bool child_exited = false;
  bool init_done = false;  // closes Telemetry subscriptions
  std::string extension_id;
  std::string fatal_call;  // Extension.InitError / Extension.ExitError after an error call
  bool in_next = false;
  int next_calls = 0;
  Clock::time_point last_next_at;
  Clock::time_point registered_at;
  int in_flight = 0;                        // invocations running
  std::deque<std::string> pending_events;   // for the extension's next `next`
  std::unique_ptr<TelemetrySender> sender;  // set once by a successful subscribe
  uint16_t listener_port = 0;
  std::string listener_path;
  std::vector<Event> init_events;  // produced before the subscription, replayed to it
  Summary summary;
};

Summary Emulator::Impl::run() {
  // A listener that vanishes mid-POST must not kill the emulator.
  std::signal(SIGPIPE, SIG_IGN);
  start_server();
  emit(factory.init_start());
  if (launch() && run_init()) {
    if (options.managed_instances) {
      run_managed_invocations();
    } else {
      for (int i = 0; i < options.invocations; ++i) {
        if (!invoke(i)) break;
        between(i + 1);
      }
    }
  }
  shutdown();
  return finish();
}

void Emulator::Impl::start_server() {
  auto params = Poco::AutoPtr<Poco::Net::HTTPServerParams>(new Poco::Net::HTTPServerParams);
  params->setMaxThreads(32);
  params->setKeepAlive(true);
  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("127.0.0.1", 0));
  port = socket.address().port();
  server = std::make_unique<Poco::Net::HTTPServer>(
      new FnHandlerFactory([this](auto& request, auto& response) { handle(request, response); }),
      pool, socket, params);
  server->start();
}

std::map<std::string, std::string> Emulator::Impl::lambda_environment() const {
  std::map<std::string, std::string> env;
  for (const char* inherited : {"PATH", "LD_LIBRARY_PATH"}) {
    if (const char* value = std::getenv(inherited)) env[inherited] = value;
  }
  const FunctionInfo& fn = options.function;
  env["AWS_LAMBDA_RUNTIME_API"] = "127.0.0.1:" + std::to_string(port);
  env["AWS_REGION"] = fn.region;
  env["AWS_DEFAULT_REGION"] = fn.region;
  env["AWS_LAMBDA_FUNCTION_NAME"] = fn.name;
  env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = std::to_string(fn.memory_mb);
  env["AWS_LAMBDA_FUNCTION_VERSION"] = fn.version;
  env["AWS_LAMBDA_INITIALIZATION_TYPE"] = factory.initialization_type();
  env["AWS_LAMBDA_LOG_GROUP_NAME"] = fn.log_group();
  env["AWS_LAMBDA_LOG_STREAM_NAME"] = fn.log_stream;
  for (const auto& [key, value] : options.env) env[key] = value;
  return env;
}

bool Emulator::Impl::launch() {
  ChildOptions child_options;
  child_options.path = options.extension_path;
  child_options.args = options.args;
  child_options.env = lambda_environment();
  child_options.stdout_path = options.stdout_path;
  child_options.stderr_path = options.stderr_path;
  child_options.on_line = [this](std::string_view line) {
    // telemetry-relay's loss accounting: "... [relay.lifecycle] summary {...}".
    if (const size_t at = line.find("] summary {"); at != std::string_view::npos) {
      std::lock_guard lock(mu);
      summary.extension_summary = std::string(line.substr(at + 10));
    }
    if (options.extension_logs) emit(factory.extension_log(line));
  };
  child_options.on_exit = [this](const ExitInfo&) {
    std::lock_guard lock(mu);
    child_exited = true;
    cv.notify_all();
  };
  try {
    child = std::make_unique<ChildProcess>(std::move(child_options));
    live_pid = child->pid();
    return true;
  } catch (const std::exception& e) {
    std::cerr << "lambda-emulator: " << e.what() << "\n";
    std::lock_guard lock(mu);
    summary.init_error = "Extension.LaunchError";
    init_done = true;
    emit_locked(factory.init_report("error", "Extension.LaunchError", 0));
    return false;
  }
}

bool Emulator::Impl::run_init() {
  const auto started = child->started_at();
  std::unique_lock lock(mu);
  cv.wait_until(lock, started + milliseconds(options.init_timeout_ms),
                [this] { return next_calls > 0 || child_exited; });
  init_done = true;
  if (summary.registered) summary.register_ms = ms_between(started, registered_at);
  summary.init_ok = next_calls > 0 && !child_exited && fatal_call.empty();
  std::string status = "success";
  std::string state = "Ready";
  if (summary.init_ok) {
    summary.init_ms = ms_between(started, last_next_at);
    // The extension sits in its first next: init is done and nothing has been invoked yet.
    const MemorySample memory = child->memory();
    summary.rss_after_init_kb = memory.vm_rss_kb;
    summary.rss_anon_after_init_kb = memory.rss_anon_kb;
  } else {
    if (!fatal_call.empty()) {
      summary.init_error = fatal_call;
    } else {
      summary.init_error = child_exited ? "Extension.Crash" : "timeout";
    }
    status = summary.init_error == "timeout" ? "timeout" : "error";
    state = fatal_call.empty() ? (summary.registered ? "Registered" : "Started") : "InitError";
  }
  // RIE's deferred calls: initRuntimeDone, one platform.extension per extension, initReport.
  std::vector<std::string> events = summary.registered_events;
  std::sort(events.begin(), events.end());
  emit_locked(factory.init_runtime_done("success", ""));
  emit_locked(factory.extension(expected_name, state, events));
  const double duration = ms_between(started, Clock::now());
  emit_locked(factory.init_report(status, status == "error" ? summary.init_error : "",
                                  summary.init_ok ? summary.init_ms : duration));
  return summary.init_ok;
}

bool Emulator::Impl::invoke(int index) {
  thaw_extension();
  send_raw_posts(index);
  const std::string request_id = new_uuid();
  const std::string trace = make_trace_header();
  emit(factory.start(request_id, trace, options.tenant_id));
  settle_telemetry();

  const auto released_wall = std::chrono::system_clock::now();
  const auto released = Clock::now();
  const auto deadline = released + milliseconds(options.function_timeout_ms);
  int expected_next_calls = 0;
  {
    std::lock_guard lock(mu);
    pending_events.push_back(
        R"({"eventType":"INVOKE","deadlineMs":)" +
        std::to_string(epoch_ms(released_wall + milliseconds(options.function_timeout_ms))) +
        R"(,"requestId":)" + json_quote(request_id) + R"(,"invokedFunctionArn":)" +
        json_quote(options.function.arn()) + R"(,"tracing":{"type":"X-Amzn-Trace-Id","value":)" +
        json_quote(trace) + "}}");
    expected_next_calls = next_calls + 1;
    summary.max_in_flight = 1;
    cv.notify_all();
  }
  resume_sender();

  run_function(request_id, index);
  const double runtime_ms = ms_between(released, Clock::now());
  emit(factory.runtime_done(request_id, "success", released_wall, runtime_ms, options.tenant_id));

  std::unique_lock lock(mu);
  const bool answered = cv.wait_until(
      lock, deadline, [&] { return next_calls >= expected_next_calls || child_exited; });
  const double duration = ms_between(released, answered ? last_next_at : Clock::now());
  const double init_ms = index == 0 ? summary.init_ms : 0;
  if (child_exited) {
    summary.fatal_error = "Extension.Crash";
    emit_locked(factory.report(request_id, "error", "Extension.Crash", duration, init_ms,
                               options.tenant_id));
    return false;
  }
  if (!answered) {
    summary.fatal_error = "Sandbox.Timeout";
    shutdown_reason = "timeout";
    emit_locked(factory.report(request_id, "timeout", "", duration, init_ms, options.tenant_id));
    return false;
  }
  invoke_to_next_samples.push_back(duration);
  // platform.report exists only once every extension called next, so it is delivered during
  // the next invocation or at shutdown, as in Lambda.
  emit_locked(factory.report(request_id, "success", "", std::max(duration, runtime_ms), init_ms,
                             options.tenant_id));
  summary.invocations_completed++;
  return true;
}

void Emulator::Impl::run_managed_invocations() {
  std::atomic<int> next_index{0};
  const int slots = std::clamp(options.concurrency, 1, std::max(1, options.invocations));
  std::vector<std::thread> threads;
  for (int slot = 0; slot < slots; ++slot) {
    threads.emplace_back([this, &next_index] {
      for (bool first = true;; first = false) {
        const int index = next_index++;
        if (index >= options.invocations) return;
        if (!first && options.gap_ms > 0) std::this_thread::sleep_for(milliseconds(options.gap_ms));
        if (!managed_invoke(index)) return;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  {
    std::lock_guard lock(mu);
    if (child_exited) {
      summary.fatal_error = "Extension.Crash";
      return;
    }
  }
  if (options.between_invocations) options.between_invocations(options.invocations);
}

bool Emulator::Impl::managed_invoke(int index) {
  {
    std::lock_guard lock(mu);
    if (child_exited) return false;
    summary.max_in_flight = std::max(summary.max_in_flight, ++in_flight);
  }
  send_raw_posts(index);
  const std::string request_id = new_uuid();
  emit(factory.start(request_id, make_trace_header(), options.tenant_id));
  const auto started_wall = std::chrono::system_clock::now();
  const auto started = Clock::now();
  run_function(request_id, index);
  // No extension takes part in the invocation, so nothing waits for a `next` before the report.
  const double duration = ms_between(started, Clock::now());
  std::lock_guard lock(mu);
  --in_flight;
  emit_locked(
      factory.managed_report(request_id, "success", started_wall, duration, options.tenant_id));
  summary.invocations_completed++;
  return true;
}

void Emulator::Impl::run_function(const std::string& request_id, int index) {
  const int bursts = std::max(1, options.log_bursts);
  const auto pause = std::chrono::microseconds(options.runtime_ms * 1000 / bursts);
  int line = 0;
  const bool burst_here = options.burst_events > 0 &&
                          (options.burst_every > 0 ? index % options.burst_every == 0 : index == 0);
  if (burst_here) {
    std::vector<Event> events;
    events.reserve(static_cast<size_t>(options.burst_events));
    for (int i = 0; i < options.burst_events; ++i) {
      events.push_back(factory.function_log(request_id, index + 1, ++line, options.log_format,
                                            options.tenant_id));
    }
    // One lock for the whole burst: it reaches the platform's buffer at once.
    std::lock_guard lock(mu);
    for (Event& event : events) emit_locked(std::move(event));
  }
  for (int burst = 0; burst < bursts; ++burst) {
    const int lines =
        options.logs_per_invoke / bursts + (burst < options.logs_per_invoke % bursts ? 1 : 0);
    for (int i = 0; i < lines; ++i) {
      emit(factory.function_log(request_id, index + 1, ++line, options.log_format,
                                options.tenant_id));
    }
    std::this_thread::sleep_for(pause);
  }
}

void Emulator::Impl::between(int next_invocation) {
  freeze_extension();
  if (options.gap_ms > 0) std::this_thread::sleep_for(milliseconds(options.gap_ms));
  if (options.between_invocations) options.between_invocations(next_invocation);
}

void Emulator::Impl::freeze_extension() {
  if (!options.freeze || !child) return;
  TelemetrySender* telemetry = nullptr;
  {
    std::lock_guard lock(mu);
    if (child_exited) return;
    telemetry = sender.get();
  }
  // The sandbox freezes with no POST in flight; the platform's sender freezes with it.
  if (telemetry) {
    telemetry->pause();
    telemetry->wait_idle(milliseconds(options.post_timeout_ms + 1000));
  }
  const bool stopped = child->freeze();
  frozen = true;
  const MemorySample memory = stopped ? child->memory() : MemorySample{};
  std::lock_guard lock(mu);
  if (stopped) summary.freezes++;
  if (memory.vm_rss_kb > 0) {
    summary.frozen_rss_kb.push_back(memory.vm_rss_kb);
    summary.frozen_rss_anon_kb.push_back(memory.rss_anon_kb);
  }
}

void Emulator::Impl::thaw_extension() {
  if (!frozen) return;
  child->thaw();
  frozen = false;
}

void Emulator::Impl::resume_sender() {
  std::lock_guard lock(mu);
  if (sender) sender->resume();
}

void Emulator::Impl::settle_telemetry() {
  if (!options.settle_telemetry_before_events) return;
  TelemetrySender* telemetry = nullptr;
  {
    std::lock_guard lock(mu);
    telemetry = sender.get();
  }
  // Bounded by the sender's own retries, so a listener that never answers cannot hang us.
  const int attempts = options.post_retries + 1;
  const int backoff = options.retry_backoff_ms << std::min(options.post_retries, 16);
  if (telemetry) {
    telemetry->flush(milliseconds(attempts * options.post_timeout_ms + backoff + 1000));
  }
}

void Emulator::Impl::send_raw_posts(int before_invocation) {
  for (size_t i = 0; i < options.raw_posts.size(); ++i) {
    const RawPost& raw = options.raw_posts[i];
    if (raw.before_invocation != before_invocation) continue;
    const int status = post_to_listener(raw.body, raw.content_type);
    std::lock_guard lock(mu);
    summary.raw_post_statuses[i] = status;
  }
}

void Emulator::Impl::shutdown() {
  if (!child) return;
  thaw_extension();
  if (summary.init_ok) {
    send_raw_posts(options.invocations);
    settle_telemetry();
  }
  const auto started = Clock::now();
  const auto deadline = started + milliseconds(options.shutdown_ms);
  bool sent = false;
  bool wants_shutdown = false;
  {
    std::lock_guard lock(mu);
    shutting_down = true;
    wants_shutdown = contains(summary.registered_events, "SHUTDOWN");
    if (!child_exited && summary.init_ok && wants_shutdown) {
      pending_events.push_back(R"({"eventType":"SHUTDOWN","deadlineMs":)" +
                               std::to_string(epoch_ms(std::chrono::system_clock::now() +
                                                       milliseconds(options.shutdown_ms))) +
                               R"(,"shutdownReason":)" + json_quote(shutdown_reason) + "}");
      summary.shutdown_sent = sent = true;
      cv.notify_all();
    }
  }
  resume_sender();
  // RIE SIGKILLs extensions that did not ask for SHUTDOWN at once; after a failed init the
  // extension gets the window to exit by itself (e.g. after init/error).
  if (!sent && summary.init_ok && !wants_shutdown) child->kill();
  const bool exited = child->wait_exit(deadline);
  if (!exited) {
    child->kill();
    child->wait_exit(Clock::now() + std::chrono::seconds(10));
  }
  std::lock_guard lock(mu);
  summary.killed = !exited || (!sent && summary.init_ok && !wants_shutdown);
  summary.exited_before_deadline = sent && exited;
  if (const auto info = child->exit_info(); info && sent) {
    summary.shutdown_duration_ms = ms_between(started, info->at);
  }
}

Summary Emulator::Impl::finish() {
  {
    std::lock_guard lock(mu);
    closing = true;
    cv.notify_all();
  }
  if (child) {
    if (const auto info = child->exit_info()) {
      summary.exited = true;
      summary.exit_code = info->exit_code;
      summary.exit_signal = info->signal;
      summary.cpu_user_ms = info->user_cpu_ms;
      summary.cpu_system_ms = info->system_cpu_ms;
      summary.max_rss_kb = info->max_rss_kb;
    }
    child.reset();  // joins the output readers, so nothing emits after this
  }
  server->stopAll(true);

  // The sender thread may be waiting for mu (logsDropped), so it is stopped without mu held.
  TelemetrySender* telemetry = nullptr;
  {
    std::lock_guard lock(mu);
    telemetry = sender.get();
  }
  if (telemetry) telemetry->stop();

  std::lock_guard lock(mu);
  if (sender) {
    SenderStats stats = sender->stats();
    summary.delivered_by_type = stats.delivered_by_type;
    summary.events_delivered = stats.events_delivered;
    summary.bytes_delivered = stats.bytes_delivered;
    summary.posts_ok = stats.posts_ok;
    summary.posts_failed = stats.posts_failed;
    summary.post_retries = stats.retries;
    summary.batches_dropped = stats.batches_dropped;
    summary.events_dropped = stats.events_dropped;
    summary.batch_events = stats.batch_events;
    summary.post_latency_ms = Percentiles::of(stats.post_latency_ms);
  }
  summary.generated_by_type = log.generated_by_type();
  summary.events_for_subscriber = log.queued_count();
  summary.subscriber_events = log.queued_texts();
  summary.invoke_to_next_ms = Percentiles::of(invoke_to_next_samples);
  summary.invoke_to_next_each_ms = invoke_to_next_samples;
  return summary;
}

void Emulator::Impl::handle(Poco::Net::HTTPServerRequest& request,
                            Poco::Net::HTTPServerResponse& response) {
  using Poco::Net::HTTPRequest;
  const auto arrived = Clock::now();
  const std::string path = Poco::URI(request.getURI()).getPath();
  const std::string& method = request.getMethod();
  const std::string id = request.get("Lambda-Extension-Identifier", "");
  if (method == HTTPRequest::HTTP_GET && path == kNextPath) {
    on_next(id, response, arrived);
    return;
  }
  Answer answer{404, ""};
  if (method == HTTPRequest::HTTP_POST && path == kRegisterPath) {
    answer = on_register(request.get("Lambda-Extension-Name", ""),
                         request.get("Lambda-Extension-Accept-Feature", ""), read_body(request),
                         arrived);
  } else if (method == HTTPRequest::HTTP_POST &&
             (path == kInitErrorPath || path == kExitErrorPath)) {
    answer =
        on_error_call(id, request.get("Lambda-Extension-Function-Error-Type", ""),
                      path == kInitErrorPath ? "init/error" : "exit/error", read_body(request));
  } else if (method == HTTPRequest::HTTP_PUT && path == kTelemetryPath) {
    answer = on_subscribe(id, read_body(request));
  }
  send_answer(response, answer);
}

Answer Emulator::Impl::on_register(const std::string& name, const std::string& features,
                                   const std::string& body, Clock::time_point arrived) {
  if (options.register_status != 0) {
    return error_answer(options.register_status, "Emulator.InjectedFault",
                        "register answer injected by the emulator's options");
  }
  if (name.empty())
    return error_answer(403, "Extension.InvalidExtensionName", "Empty extension name");
  std::vector<std::string> events;
  try {
    const auto object = Poco::JSON::Parser().parse(body).extract<Poco::JSON::Object::Ptr>();
    const auto keys = object->getArray("configurationKeys");
    if (keys && keys->size() > 0) {
      return error_answer(403, "InvalidRequestFormat",
                          "configurationKeys are deprecated; use environment variables instead");
    }
    if (const auto list = object->getArray("events")) {
      for (unsigned i = 0; i < list->size(); ++i)
        events.push_back(list->getElement<std::string>(i));
    }
  } catch (const Poco::Exception& e) {
    return error_answer(403, "InvalidRequestFormat", e.displayText());
  }
  const bool external = name == expected_name;
  if (options.managed_instances && !external && !events.empty()) {
    return error_answer(403, "Extension.InvalidEventType",
                        "No events allowed for internal extensions");
  }
  for (const auto& event : events) {
    // RIE-LMI's ValidateExternalAgentEvent accepts SHUTDOWN alone: there are no INVOKE events.
    const bool valid = event == "SHUTDOWN" || (event == "INVOKE" && !options.managed_instances);
    if (!valid) {
      return error_answer(403, "Extension.InvalidEventType", event + ": ErrorInvalidEventType");
    }
  }

  std::lock_guard lock(mu);
  // A name that matches no launched file makes an internal extension, which never counts as
  // the launched one registering: init then waits for the timeout, as in Lambda.
  if (!external && contains(events, "SHUTDOWN")) {
    return error_answer(403, "Extension.InvalidEventType",
                        "SHUTDOWN: ShutdownEventNotSupportedForInternalExtension");
  }
  if (external && summary.registered) {
    return error_answer(403, "Extension.InvalidExtensionState",
                        "State transition from Registered to Registered failed for extension " +
                            name + ". Error: State transition is not allowed");
  }
  const std::string id = new_uuid();
  if (external) {
    extension_id = id;
    registered_at = arrived;
    summary.registered = true;
    summary.extension_name = name;
    summary.registered_events = events;
    cv.notify_all();
  }
  const FunctionInfo& fn = options.function;
  std::string reply = "{";
  if (contains(split_features(features), "accountId")) {
    reply += R"("accountId":)" + json_quote(fn.account_id) + ",";
  }
  reply += R"("functionName":)" + json_quote(fn.name) + R"(,"functionVersion":)" +
           json_quote(fn.version) + R"(,"handler":"bootstrap.handler"})" + "\n";
  return Answer{200, reply, "application/json", {{"Lambda-Extension-Identifier", id}}};
}

std::optional<Answer> Emulator::Impl::check_identifier_locked(const std::string& id) const {
  if (id.empty()) {
    return error_answer(403, "Extension.MissingExtensionIdentifier",
                        "Missing Lambda-Extension-Identifier header");
  }
  if (id != extension_id) {
    return error_answer(403, "Extension.UnknownExtensionIdentifier", "Unknown extension " + id);
  }
  return std::nullopt;
}

void Emulator::Impl::on_next(const std::string& id, Poco::Net::HTTPServerResponse& response,
                             Clock::time_point arrived) {
  std::unique_lock lock(mu);
  if (auto error = check_identifier_locked(id)) {
    lock.unlock();
    send_answer(response, *error);
    return;
  }
  if (in_next || !fatal_call.empty()) {
    lock.unlock();
    send_answer(response, error_answer(403, "Extension.InvalidExtensionState",
                                       "State transition to Ready failed for extension " + id +
                                           ". Error: State transition is not allowed"));
    return;
  }
  in_next = true;
  next_calls++;
  last_next_at = arrived;
  cv.notify_all();
  cv.wait(lock, [this] { return !pending_events.empty() || closing; });
  in_next = false;
  if (pending_events.empty()) {
    lock.unlock();
    send_answer(response, error_answer(500, "InternalServerError", "Internal Server Error"));
    return;
  }
  std::string event = std::move(pending_events.front());
  pending_events.pop_front();
  lock.unlock();
  send_answer(response, Answer{200,
                               std::move(event),
                               "application/json",
                               {{"Lambda-Extension-Event-Identifier", new_uuid()}}});
}

Answer Emulator::Impl::on_error_call(const std::string& id, const std::string& error_type,
                                     const std::string& path, const std::string& body) {
  std::lock_guard lock(mu);
  if (auto error = check_identifier_locked(id)) return *error;
  if (error_type.empty()) {
    return error_answer(403, "Extension.MissingHeader",
                        "Lambda-Extension-Function-Error-Type not found");
  }
  const bool init = path == "init/error";
  if (init && next_calls > 0) {
    return error_answer(403, "Extension.InvalidExtensionState",
                        "State transition from Ready to InitError failed for extension " + id);
  }
  summary.error_calls.push_back(ErrorCall{path, error_type, body});
  if (fatal_call.empty()) fatal_call = init ? "Extension.InitError" : "Extension.ExitError";
  cv.notify_all();
  return Answer{202, R"({"status":"OK"})"
                     "\n"};
}

Answer Emulator::Impl::on_subscribe(const std::string& id, const std::string& body) {
  std::lock_guard lock(mu);
  if (auto error = check_identifier_locked(id)) return *error;
  if (options.subscribe_status != 0) {
    summary.subscribe_status = options.subscribe_status;
    return error_answer(options.subscribe_status, "ValidationError",
                        "subscribe answer injected by the emulator's options");
  }
  if (!options.telemetry_supported) {
    summary.subscribe_status = 202;
    return Answer{202, R"({"errorMessage":"Telemetry API is not supported","errorType":)"
                       R"("Telemetry.NotSupported"})"
                       "\n"};
  }
  if (init_done) {
    summary.subscribe_status = 403;
    return error_answer(403, "Telemetry.SubscriptionClosed",
                        "Telemetry API subscription is closed");
  }
  Subscription subscription;
  const std::string errors = validate_subscription(body, options.managed_instances, subscription);
  summary.subscribe_schemas.push_back(subscription.schema_version);
  if (!errors.empty()) {
    summary.subscribe_status = 400;
    Answer answer{400,
                  R"({"errorType":"ValidationError","errorMessage":)" + json_quote(errors) + "}\n"};
    return answer;
  }
  if (contains(options.refused_schema_versions, subscription.schema_version)) {
    summary.subscribe_status = 400;
    return Answer{400, R"({"errorType":"ValidationError","errorMessage":)" +
                           json_quote("schemaVersion " + json_quote(subscription.schema_version) +
                                      " is not supported") +
                           "}\n"};
  }
  summary.subscribe_status = 200;
  // A repeated subscribe is idempotent: one subscription, the first one's settings.
  if (!sender) {
    summary.schema_version = subscription.schema_version;
    summary.subscribed_types = subscription.types;
    summary.buffering = subscription.buffering;
    listener_port = subscription.port;
    listener_path = subscription.path;
    SenderOptions sender_options;
    sender_options.port = subscription.port;
    sender_options.path = subscription.path;
    sender_options.buffering = subscription.buffering;
    sender_options.retries = options.post_retries;
    sender_options.backoff_ms = options.retry_backoff_ms;
    sender_options.post_timeout_ms = options.post_timeout_ms;
    sender_options.max_queued_batches = options.max_queued_batches;
    sender = std::make_unique<TelemetrySender>(
        sender_options, [this](uint64_t records, uint64_t bytes, const std::string& why) {
          return make_drop_event(records, bytes, why);
        });
    for (Event& event : init_events) {
      if (subscribed_locked(event.type)) {
        log.queued(event);
        sender->enqueue(std::move(event));
      }
    }
    init_events.clear();
    emit_locked(factory.telemetry_subscription(expected_name, subscription.types));
  }
  return Answer{200, "\"OK\""};
}

void Emulator::Impl::emit(Event event) {
  std::lock_guard lock(mu);
  emit_locked(std::move(event));
}

void Emulator::Impl::emit_locked(Event event) {
  log.generated(event);
  if (sender) {
    if (subscribed_locked(event.type)) {
      log.queued(event);
      sender->enqueue(std::move(event));
    }
  } else if (!init_done) {
    init_events.push_back(std::move(event));
  }
}

bool Emulator::Impl::subscribed_locked(std::string_view type) const {
  return contains(summary.subscribed_types, category_of(type));
}

std::optional<Event> Emulator::Impl::make_drop_event(uint64_t records, uint64_t bytes,
                                                     const std::string& why) {
  Event event = factory.logs_dropped(records, bytes, why);
  log.generated(event);
  std::lock_guard lock(mu);
  if (!subscribed_locked(event.type)) return std::nullopt;
  log.queued(event);
  return event;
}

int Emulator::Impl::post_to_listener(std::string_view body, std::string_view content_type) const {
  uint16_t target_port = 0;
  std::string target_path;
  {
    std::lock_guard lock(mu);
    if (!sender) return -2;
    target_port = listener_port;
    target_path = listener_path;
  }
  try {
    Poco::Net::HTTPClientSession session("127.0.0.1", target_port);
    session.setTimeout(Poco::Timespan(options.post_timeout_ms * Poco::Timespan::MILLISECONDS));
    Poco::Net::HTTPRequest request(Poco::Net::HTTPRequest::HTTP_POST, target_path,
                                   Poco::Net::HTTPMessage::HTTP_1_1);
    request.setContentType(std::string(content_type));
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    session.sendRequest(request).write(body.data(), static_cast<std::streamsize>(body.size()));
    Poco::Net::HTTPResponse response;
    Poco::NullOutputStream sink;
    Poco::StreamCopier::copyStream(session.receiveResponse(response), sink);
    return static_cast<int>(response.getStatus());
  } catch (const Poco::Exception&) {
    return -1;
  }
}

Emulator::Emulator(Options options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->summary.raw_post_statuses.assign(impl_->options.raw_posts.size(), 0);
  impl_->summary.managed_instances = impl_->options.managed_instances;
}

Emulator::~Emulator() = default;

Summary Emulator::run() { return impl_->run(); }

uint16_t Emulator::api_port() const { return impl_->port; }

pid_t Emulator::extension_pid() const { return impl_->child ? impl_->child->pid() : -1; }

void Emulator::kill_extension() {
  std::lock_guard lock(impl_->mu);  // child_exited: never signal a pid that was reaped
  if (const pid_t pid = impl_->live_pid; pid > 0 && !impl_->child_exited) ::kill(pid, SIGKILL);
}

int Emulator::post_to_listener(std::string_view body, std::string_view content_type) const {
  return impl_->post_to_listener(body, content_type);
}

}  // namespace relay::emu
