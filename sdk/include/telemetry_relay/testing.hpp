// telemetry_relay/testing.hpp: drive a sink in unit tests without the host.
//
//   relay::sdk::testing::FakeHost host;
//   relay::sdk::testing::BatchBuilder batch;
//   batch.add(R"({"time":"2024-01-01T00:00:00.000Z","type":"function","record":"hi"})");
//   auto sink = relay::sdk::testing::SinkInstance::create(
//       *relay_sink_entry(RELAY_ABI_MAJOR, RELAY_ABI_MINOR), host, {{"path", "/tmp/out"}});
//   EXPECT_EQ(sink.deliver(batch.build()).status, RELAY_OK);
//
// A test may link the plugin's sources directly (one plugin per test binary, since each defines
// relay_sink_entry), or load the built .so with Library, which exercises the real symbol table.
// POSIX only (dlopen); link the test with ${CMAKE_DL_LIBS}.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <telemetry_relay/sink.hpp>
#include <utility>
#include <vector>

namespace relay::sdk::testing {

struct LogLine {
  relay_log_level level;
  std::string message;
};

// A relay_host whose log lines are kept for assertions. Thread-safe like the real host. Not
// movable: the table points back at the object.
class FakeHost {
 public:
  explicit FakeHost(std::string version = "0.0.0-test") : version_(std::move(version)) {
    table_.abi_major = RELAY_ABI_MAJOR;
    table_.abi_minor = RELAY_ABI_MINOR;
    table_.struct_size = sizeof(relay_host);
    table_.host_version = version_.c_str();
    table_.host_ctx = this;
    table_.log = &FakeHost::log_callback;
  }
  FakeHost(const FakeHost&) = delete;
  FakeHost& operator=(const FakeHost&) = delete;

  const relay_host* get() const noexcept { return &table_; }
  operator const relay_host*() const noexcept { return &table_; }

  std::vector<LogLine> lines() const {
    std::lock_guard lock(mutex_);
    return lines_;
  }
  size_t count(relay_log_level level) const {
    std::lock_guard lock(mutex_);
    size_t n = 0;
    for (const auto& line : lines_) {
      n += line.level == level ? 1 : 0;
    }
    return n;
  }
  // True when some line contains text (at any level).
  bool logged(std::string_view text) const {
    std::lock_guard lock(mutex_);
    for (const auto& line : lines_) {
      if (line.message.find(text) != std::string::npos) {
        return true;
      }
    }
    return false;
  }
  void clear() {
    std::lock_guard lock(mutex_);
    lines_.clear();
  }

 private:
  static void log_callback(void* ctx, relay_log_level level, const char* message) {
    auto* self = static_cast<FakeHost*>(ctx);
    std::lock_guard lock(self->mutex_);
    self->lines_.push_back({level, message == nullptr ? std::string() : std::string(message)});
  }

  std::string version_;
  relay_host table_{};
  mutable std::mutex mutex_;
  std::vector<LogLine> lines_;
};

// Builds a relay_batch the way the host does: events keep their bytes, the batch JSON is
// "[e1,e2,...]", type/time/record are views into each event, and the batch carries an id and a
// feedback slot (ABI 1.1). The builder owns the storage; the batch from build() stays valid until
// the builder changes or dies. To see what a 1.0 plugin or host would, copy the batch and set
// struct_size = offsetof(relay_batch, batch_id).
class BatchBuilder {
 public:
  static constexpr std::string_view kDefaultId = "0123456789abcdef0123456789abcdef";

  // The batch id the host would send (the same on every retry of this batch).
  BatchBuilder& id(std::string batch_id) {
    id_ = std::move(batch_id);
    return *this;
  }

  // The function's ARN the host learnt from INVOKE events (ABI 1.4); empty by default.
  BatchBuilder& function_arn(std::string arn) {
    function_arn_ = std::move(arn);
    return *this;
  }

  // An event object as the Telemetry API sends it; type, time and record are found in it.
  BatchBuilder& add(std::string event_json) {
    events_.push_back(std::move(event_json));
    return *this;
  }

  const relay_batch& build() {
    json_.clear();  // not `json_ = "["`: GCC 12 -O3 flags that with a false -Wrestrict
    json_ += '[';
    views_.clear();
    for (const std::string& event : events_) {
      if (json_.size() > 1) {
        json_ += ',';
      }
      json_ += event;
      relay_event view{};
      view.json = str(event);
      view.type = unquote(top_level_value(event, "type"));
      view.time = unquote(top_level_value(event, "time"));
      view.record = str(top_level_value(event, "record"));
      views_.push_back(view);
    }
    json_ += ']';
    batch_.struct_size = sizeof(relay_batch);
    batch_.events = views_.data();
    batch_.count = views_.size();
    batch_.json = str(json_);
    batch_.batch_id = str(id_);
    feedback_ = relay_deliver_feedback{};
    feedback_.struct_size = sizeof(relay_deliver_feedback);
    batch_.feedback = &feedback_;
    batch_.function_arn = str(function_arn_);
    return batch_;
  }

  // The raw JSON text of a top-level member of a JSON object; empty when absent or malformed.
  // Just enough JSON for well-formed test input, so the SDK needs no JSON library.
  static std::string_view top_level_value(std::string_view object, std::string_view key) {
    size_t i = skip_ws(object, 0);
    if (i >= object.size() || object[i] != '{') {
      return {};
    }
    ++i;
    while (true) {
      i = skip_ws(object, i);
      if (i >= object.size() || object[i] != '"') {
        return {};
      }
      size_t key_end = skip_value(object, i);
      std::string_view member = object.substr(i + 1, key_end - i - 2);
      i = skip_ws(object, key_end);
      if (i >= object.size() || object[i] != ':') {
        return {};
      }
      size_t value_begin = skip_ws(object, i + 1);
      size_t value_end = skip_value(object, value_begin);
      if (value_end > object.size() || value_end == value_begin) {
        return {};
      }
      if (member == key) {
        return object.substr(value_begin, value_end - value_begin);
      }
      i = skip_ws(object, value_end);
      if (i >= object.size() || object[i] != ',') {
        return {};
      }
      ++i;
    }
  }

 private:
  static relay_str str(std::string_view s) { return relay_str{s.data(), s.size()}; }
  static relay_str unquote(std::string_view s) {
    if (s.size() >= 2 && s.front() == '"') {
      s = s.substr(1, s.size() - 2);
    }
    return str(s);
  }
  static size_t skip_ws(std::string_view s, size_t i) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) {
      ++i;
    }
    return i;
  }
  // One past the end of the JSON value starting at i (a string, object, array or scalar).
  static size_t skip_value(std::string_view s, size_t i) {
    int depth = 0;
    bool in_string = false;
    for (; i < s.size(); ++i) {
      char c = s[i];
      if (in_string) {
        if (c == '\\') {
          ++i;
        } else if (c == '"') {
          in_string = false;
          if (depth == 0) {
            return i + 1;
          }
        }
      } else if (c == '"') {
        in_string = true;
      } else if (c == '{' || c == '[') {
        ++depth;
      } else if (c == '}' || c == ']') {
        if (depth == 0) {
          return i;
        }
        if (--depth == 0) {
          return i + 1;
        }
      } else if (depth == 0 && (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r')) {
        return i;
      }
    }
    return in_string || depth > 0 ? s.size() + 1 : s.size();
  }

  std::deque<std::string> events_;  // a deque: adding never moves the strings views point into
  std::vector<relay_event> views_;
  std::string json_;
  std::string id_{kDefaultId};
  std::string function_arn_;
  relay_deliver_feedback feedback_{};
  relay_batch batch_{};
};

// What a callback returned, with the error text the plugin wrote (empty on RELAY_OK) and, for
// deliver, the feedback it gave (ABI 1.1).
struct Outcome {
  relay_status status = RELAY_OK;
  std::string error;
  uint64_t retry_after_ms = 0;   // the plugin's Retry-After hint, 0 when none
  bool discarded = false;        // RELAY_FEEDBACK_DISCARDED
  bool too_large = false;        // RELAY_FEEDBACK_TOO_LARGE (ABI 1.2)
  uint64_t rejected_events = 0;  // refused by the receiver in an OK delivery (ABI 1.4)
  bool ok() const { return status == RELAY_OK; }
};

using KeyValues = std::vector<std::pair<std::string, std::string>>;

// One sink instance driven through its descriptor exactly as the host does: create with
// host-owned config views, deliver/flush with a host-owned error buffer, destroy once.
class SinkInstance {
 public:
  static constexpr size_t kErrorCapacity = 512;

  // Creates an instance. On failure, created() is false and create_outcome() says why.
  static SinkInstance create(const relay_sink_descriptor& descriptor, const relay_host* host,
                             const KeyValues& config = {}) {
    SinkInstance sink(descriptor);
    std::vector<relay_kv> kvs;
    kvs.reserve(config.size());
    for (const auto& [key, value] : config) {
      kvs.push_back({{key.data(), key.size()}, {value.data(), value.size()}});
    }
    sink.create_ = sink.call([&](relay_error* err) {
      return descriptor.create(host, kvs.data(), kvs.size(), &sink.instance_, err);
    });
    if (!sink.create_.ok()) {
      sink.instance_ = nullptr;
    }
    return sink;
  }

  SinkInstance(SinkInstance&& other) noexcept
      : descriptor_(other.descriptor_),
        instance_(std::exchange(other.instance_, nullptr)),
        create_(std::move(other.create_)) {}
  SinkInstance& operator=(SinkInstance&&) = delete;
  ~SinkInstance() { destroy(); }

  bool created() const { return instance_ != nullptr; }
  const Outcome& create_outcome() const { return create_; }

  Outcome deliver(const relay_batch& batch,
                  uint64_t deadline_unix_ms = Deadline::in(std::chrono::seconds(10)).unix_ms()) {
    require_instance();
    // Like the host: a fresh feedback slot for each call, read back afterwards.
    const bool has_feedback =
        batch.struct_size >= offsetof(relay_batch, feedback) + sizeof(batch.feedback) &&
        batch.feedback != nullptr;
    if (has_feedback) {
      const uint32_t size = batch.feedback->struct_size;
      *batch.feedback = relay_deliver_feedback{};
      batch.feedback->struct_size = size;
    }
    Outcome outcome = call([&](relay_error* err) {
      return descriptor_->deliver(instance_, &batch, deadline_unix_ms, err);
    });
    if (has_feedback) {
      outcome.retry_after_ms = batch.feedback->retry_after_ms;
      outcome.discarded = (batch.feedback->flags & RELAY_FEEDBACK_DISCARDED) != 0;
      outcome.too_large = (batch.feedback->flags & RELAY_FEEDBACK_TOO_LARGE) != 0;
      if (batch.feedback->struct_size >=
          offsetof(relay_deliver_feedback, rejected_events) + sizeof(uint64_t)) {
        outcome.rejected_events = batch.feedback->rejected_events;
      }
    }
    return outcome;
  }

  Outcome flush(uint64_t deadline_unix_ms = Deadline::in(std::chrono::seconds(10)).unix_ms()) {
    require_instance();
    if (descriptor_->flush == nullptr) {
      return {};
    }
    return call(
        [&](relay_error* err) { return descriptor_->flush(instance_, deadline_unix_ms, err); });
  }

  void destroy() {
    if (instance_ != nullptr) {
      descriptor_->destroy(std::exchange(instance_, nullptr));
    }
  }

 private:
  explicit SinkInstance(const relay_sink_descriptor& descriptor) : descriptor_(&descriptor) {}

  void require_instance() const {
    if (instance_ == nullptr) {
      throw std::logic_error("SinkInstance: no instance (create failed: " + create_.error + ")");
    }
  }

  template <class Call>
  static Outcome call(Call&& callback) {
    char buffer[kErrorCapacity] = {};
    relay_error err{buffer, sizeof(buffer)};
    Outcome outcome;
    outcome.status = callback(&err);
    buffer[sizeof(buffer) - 1] = '\0';  // the host's guard against a plugin that forgot the NUL
    if (outcome.status != RELAY_OK) {
      outcome.error = buffer;
    }
    return outcome;
  }

  const relay_sink_descriptor* descriptor_;
  void* instance_ = nullptr;
  Outcome create_;
};

// A plugin .so loaded with dlopen(RTLD_NOW | RTLD_LOCAL), as the host loads it. Throws
// std::runtime_error with dlerror() text when the file cannot be loaded or has no entry.
class Library {
 public:
  explicit Library(const std::string& path) : handle_(dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL)) {
    if (handle_ == nullptr) {
      const char* why = dlerror();
      throw std::runtime_error("dlopen " + path + ": " + (why ? why : "unknown error"));
    }
  }
  Library(const Library&) = delete;
  Library& operator=(const Library&) = delete;
  ~Library() { dlclose(handle_); }

  relay_sink_entry_fn entry() const {
    void* symbol = dlsym(handle_, RELAY_SINK_ENTRY_SYMBOL);
    if (symbol == nullptr) {
      throw std::runtime_error(std::string("no ") + RELAY_SINK_ENTRY_SYMBOL);
    }
    return reinterpret_cast<relay_sink_entry_fn>(symbol);
  }

  // The descriptor for this host's ABI; throws when the plugin refuses it.
  const relay_sink_descriptor& descriptor() const {
    const relay_sink_descriptor* descriptor = entry()(RELAY_ABI_MAJOR, RELAY_ABI_MINOR);
    if (descriptor == nullptr) {
      throw std::runtime_error("relay_sink_entry refused ABI " + std::to_string(RELAY_ABI_MAJOR));
    }
    return *descriptor;
  }

 private:
  void* handle_;
};

}  // namespace relay::sdk::testing
