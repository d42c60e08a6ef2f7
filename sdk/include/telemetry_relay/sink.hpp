// telemetry_relay/sink.hpp: the header-only C++ layer over sink_abi.h.
//
// A sink is one class and one macro:
//
//   class MySink final : public relay::sdk::Sink {
//    public:
//     MySink(const relay::sdk::Host& host, const relay::sdk::Config& config);  // may throw
//     relay::sdk::Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline) override;
//   };
//   RELAY_SINK_PLUGIN(MySink, "my-sink", "1.0.0");
//
// Everything here compiles into the plugin; only the C ABI crosses the .so boundary, so the
// plugin may use its own compiler, standard library and flags. No POCO, no Boost.
#pragma once

#include <telemetry_relay/sink_abi.h>

#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <iterator>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <telemetry_relay/config_keys.hpp>
#include <type_traits>
#include <utility>
#include <vector>

namespace relay::sdk {

// What a delivery achieved; the same values as relay_status.
enum class Status : int {
  kOk = RELAY_OK,        // delivered, or deliberately discarded by configuration
  kRetry = RELAY_RETRY,  // transient: the host keeps the batch and tries again later
  kDrop = RELAY_DROP,    // permanent for this batch: the host drops and counts it
  kFatal = RELAY_FATAL,  // the sink is unusable: the host disables it
};

constexpr relay_status to_abi(Status status) noexcept {
  switch (status) {
    case Status::kOk:
      return RELAY_OK;
    case Status::kRetry:
      return RELAY_RETRY;
    case Status::kDrop:
      return RELAY_DROP;
    case Status::kFatal:
      return RELAY_FATAL;
  }
  return RELAY_DROP;  // a value cast from an int: the ABI's own rule for unknown values
}

constexpr std::string_view to_string(Status status) noexcept {
  switch (status) {
    case Status::kOk:
      return "ok";
    case Status::kRetry:
      return "retry";
    case Status::kDrop:
      return "drop";
    case Status::kFatal:
      return "fatal";
  }
  return "drop";
}

enum class LogLevel : int {
  kError = RELAY_LOG_ERROR,
  kWarn = RELAY_LOG_WARN,
  kInfo = RELAY_LOG_INFO,
  kDebug = RELAY_LOG_DEBUG,
};

namespace detail {

constexpr std::string_view view(relay_str s) noexcept {
  return s.data == nullptr ? std::string_view() : std::string_view(s.data, s.size);
}

// True when a struct whose first field reports struct_size carries the field ending at `end`.
constexpr bool covers(uint32_t struct_size, size_t end) noexcept { return struct_size >= end; }

// Copies msg into the host's buffer: truncated to capacity - 1 bytes without splitting a UTF-8
// sequence, always NUL-terminated. Safe with a null or zero-capacity buffer.
inline void write_error(relay_error* err, std::string_view msg) noexcept {
  if (err == nullptr || err->message == nullptr || err->capacity == 0) {
    return;
  }
  size_t n = msg.size() < err->capacity - 1 ? msg.size() : err->capacity - 1;
  if (n < msg.size()) {
    while (n > 0 && (static_cast<unsigned char>(msg[n]) & 0xC0) == 0x80) {
      --n;
    }
  }
  if (n > 0) {
    std::memcpy(err->message, msg.data(), n);
  }
  err->message[n] = '\0';
}

template <class SinkClass>
struct Glue;

}  // namespace detail

// One telemetry event: views into host memory, valid only during the call that received them.
class Event {
 public:
  constexpr explicit Event(const relay_event& event) noexcept : event_(&event) {}

  // The whole event object, byte for byte as the Telemetry API sent it.
  constexpr std::string_view json() const noexcept { return detail::view(event_->json); }
  // The value of "type" without quotes, e.g. "platform.report" (escapes left as received).
  constexpr std::string_view type() const noexcept { return detail::view(event_->type); }
  // The value of "time" without quotes (ISO 8601 as sent).
  constexpr std::string_view time() const noexcept { return detail::view(event_->time); }
  // Raw JSON of "record": a quoted JSON string (text log format) or an object.
  constexpr std::string_view record() const noexcept { return detail::view(event_->record); }

 private:
  const relay_event* event_;
};

// A batch to deliver: the events in arrival order and the JSON array "[e1,e2,...]" made of
// their original bytes. Views into host memory, valid only during deliver(); copy what you keep.
class Batch {
 public:
  class Iterator {
   public:
    using iterator_category = std::random_access_iterator_tag;
    using iterator_concept = std::random_access_iterator_tag;
    using value_type = Event;
    using difference_type = std::ptrdiff_t;
    using reference = Event;
    using pointer = void;

    constexpr Iterator() noexcept = default;
    constexpr explicit Iterator(const relay_event* at) noexcept : at_(at) {}
    constexpr Event operator*() const noexcept { return Event(*at_); }
    constexpr Event operator[](difference_type n) const noexcept { return Event(at_[n]); }
    constexpr Iterator& operator++() noexcept { return ++at_, *this; }
    constexpr Iterator operator++(int) noexcept { return Iterator(at_++); }
    constexpr Iterator& operator--() noexcept { return --at_, *this; }
    constexpr Iterator operator--(int) noexcept { return Iterator(at_--); }
    constexpr Iterator& operator+=(difference_type n) noexcept { return at_ += n, *this; }
    constexpr Iterator& operator-=(difference_type n) noexcept { return at_ -= n, *this; }
    friend constexpr Iterator operator+(Iterator it, difference_type n) noexcept { return it += n; }
    friend constexpr Iterator operator+(difference_type n, Iterator it) noexcept { return it += n; }
    friend constexpr Iterator operator-(Iterator it, difference_type n) noexcept { return it -= n; }
    friend constexpr difference_type operator-(Iterator a, Iterator b) noexcept {
      return a.at_ - b.at_;
    }
    friend constexpr auto operator<=>(Iterator, Iterator) noexcept = default;

   private:
    const relay_event* at_ = nullptr;
  };

  constexpr explicit Batch(const relay_batch& batch) noexcept {
    if (detail::covers(batch.struct_size, offsetof(relay_batch, count) + sizeof(batch.count)) &&
        batch.events != nullptr) {
      events_ = batch.events;
      count_ = batch.count;
    }
    if (detail::covers(batch.struct_size, offsetof(relay_batch, json) + sizeof(batch.json))) {
      json_ = detail::view(batch.json);
    }
    if (detail::covers(batch.struct_size,
                       offsetof(relay_batch, batch_id) + sizeof(batch.batch_id))) {
      id_ = detail::view(batch.batch_id);
    }
    if (detail::covers(batch.struct_size,
                       offsetof(relay_batch, function_arn) + sizeof(batch.function_arn))) {
      function_arn_ = detail::view(batch.function_arn);
    }
  }

  constexpr size_t size() const noexcept { return count_; }
  constexpr bool empty() const noexcept { return count_ == 0; }
  // The JSON array of every event, in order; what an HTTP sink POSTs as is.
  constexpr std::string_view json() const noexcept { return json_; }
  // The delivery's stable id: the same on every retry and replay of these bytes (ABI 1.1; empty
  // from a 1.0 host). Send it along (the http sink uses a header) so a receiver can deduplicate.
  constexpr std::string_view id() const noexcept { return id_; }
  // The function's ARN from the host's INVOKE events; empty before the first one, on Managed
  // Instances, and from a host before ABI 1.4.
  constexpr std::string_view function_arn() const noexcept { return function_arn_; }
  constexpr Event operator[](size_t i) const noexcept { return Event(events_[i]); }
  // The events as the ABI's structs, in order, for std:: algorithms and ranges (Event(e) views
  // one); empty for an empty batch.
  constexpr std::span<const relay_event> events() const noexcept { return {events_, count_}; }
  constexpr Iterator begin() const noexcept { return Iterator(events_); }
  constexpr Iterator end() const noexcept { return Iterator(events_ + count_); }

 private:
  const relay_event* events_ = nullptr;
  size_t count_ = 0;
  std::string_view json_;
  std::string_view id_;
  std::string_view function_arn_;
};

// The sink's configuration: key/value pairs (keys lower-case, e.g. RELAY_HTTP_CONNECT_TIMEOUT_MS
// arrives as connect_timeout_ms). Views into host memory, valid only during the sink's
// constructor: copy what you keep. When a key repeats, the last entry wins.
class Config {
 public:
  struct Entry {
    std::string_view key;
    std::string_view value;
  };

  Config() noexcept = default;
  Config(const relay_kv* entries, size_t count) noexcept
      : entries_(entries), count_(entries == nullptr ? 0 : count) {}

  size_t size() const noexcept { return count_; }
  Entry operator[](size_t i) const noexcept {
    return {detail::view(entries_[i].key), detail::view(entries_[i].value)};
  }

  // The value of key, possibly empty; nullopt when absent.
  std::optional<std::string_view> get(std::string_view key) const noexcept {
    for (size_t i = count_; i-- > 0;) {
      if (detail::view(entries_[i].key) == key) {
        return detail::view(entries_[i].value);
      }
    }
    return std::nullopt;
  }

  std::string_view get_or(std::string_view key, std::string_view fallback) const noexcept {
    return get(key).value_or(fallback);
  }

  // Typed values of keys declared in kConfigKeys: already validated (and defaulted) by the host
  // or by create(), so these only convert. Unset keys without a default read as "", 0, false.
  std::string text(std::string_view key) const { return std::string(get_or(key, "")); }
  int64_t integer(std::string_view key) const {
    const std::string_view value = get_or(key, "");
    int64_t parsed = 0;
    std::from_chars(value.data(), value.data() + value.size(), parsed);
    return parsed;
  }
  bool boolean(std::string_view key) const { return get_or(key, "") == "true"; }

  // A whole decimal integer in [min, max]; fallback when absent or empty (an empty env var
  // means "not set"). Throws std::invalid_argument naming the key, the value and the range.
  int64_t get_int(std::string_view key, int64_t fallback, int64_t min, int64_t max) const {
    auto value = get(key);
    if (!value || value->empty()) {
      return fallback;
    }
    int64_t parsed = 0;
    const char* end = value->data() + value->size();
    auto [ptr, ec] = std::from_chars(value->data(), end, parsed);
    if (ec == std::errc() && ptr == end && parsed >= min && parsed <= max) {
      return parsed;
    }
    throw std::invalid_argument(
        std::string(key) + "=" + std::string(*value) +
        (ec == std::errc() && ptr == end ? " is out of range" : " is not an integer") +
        ": expected an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]");
  }

  // Every entry whose key starts with prefix, once per key (the last one), in input order.
  // E.g. with_prefix("header_") for the http sink's extra headers.
  std::vector<Entry> with_prefix(std::string_view prefix) const {
    std::vector<Entry> out;
    for (size_t i = 0; i < count_; ++i) {
      Entry entry = (*this)[i];
      if (entry.key.substr(0, prefix.size()) != prefix) {
        continue;
      }
      bool overridden = false;
      for (size_t j = i + 1; j < count_ && !overridden; ++j) {
        overridden = detail::view(entries_[j].key) == entry.key;
      }
      if (!overridden) {
        out.push_back(entry);
      }
    }
    return out;
  }

 private:
  const relay_kv* entries_ = nullptr;
  size_t count_ = 0;
};

// The services the host offers. Cheap to copy; valid for the whole life of the sink instance.
class Host {
 public:
  explicit Host(const relay_host* host) noexcept : host_(host) {}

  // Writes one log line attributed to the sink. [thread-safe] Never throws; a line that cannot
  // be written is lost. Never log secrets (header values, tokens): host logs reach CloudWatch.
  void log(LogLevel level, std::string_view message) const noexcept {
    if (host_ == nullptr ||
        !detail::covers(host_->struct_size, offsetof(relay_host, log) + sizeof(host_->log)) ||
        host_->log == nullptr) {
      return;
    }
    try {
      std::string line(message);  // the ABI wants NUL-terminated text
      host_->log(host_->host_ctx, static_cast<relay_log_level>(level), line.c_str());
    } catch (...) {
      // Out of memory while logging: losing the line beats crossing the boundary.
    }
  }
  void error(std::string_view message) const noexcept { log(LogLevel::kError, message); }
  void warn(std::string_view message) const noexcept { log(LogLevel::kWarn, message); }
  void info(std::string_view message) const noexcept { log(LogLevel::kInfo, message); }
  void debug(std::string_view message) const noexcept { log(LogLevel::kDebug, message); }

  // The host's version, e.g. "0.1.0"; empty when the host did not say. [thread-safe]
  std::string_view version() const noexcept {
    if (host_ == nullptr || host_->host_version == nullptr) {
      return {};
    }
    return host_->host_version;
  }
  uint32_t abi_major() const noexcept { return host_ == nullptr ? 0 : host_->abi_major; }
  uint32_t abi_minor() const noexcept { return host_ == nullptr ? 0 : host_->abi_minor; }
  const relay_host* raw() const noexcept { return host_; }

 private:
  const relay_host* host_;
};

// When the host needs deliver/flush to have returned, as Unix epoch milliseconds (wall clock,
// because Lambda gives deadlines that way). A sink should bound its I/O by remaining().
class Deadline {
 public:
  constexpr explicit Deadline(uint64_t unix_ms) noexcept : unix_ms_(unix_ms) {}

  static uint64_t now_unix_ms() noexcept {
    auto now = std::chrono::system_clock::now().time_since_epoch();
    return static_cast<uint64_t>(
        std::chrono::duration_cast<std::chrono::milliseconds>(now).count());
  }
  // A deadline `from_now` ahead, for tests and for sinks that split their budget.
  static Deadline in(std::chrono::milliseconds from_now) noexcept {
    return Deadline(now_unix_ms() + static_cast<uint64_t>(from_now.count()));
  }

  constexpr uint64_t unix_ms() const noexcept { return unix_ms_; }
  // Time left, never negative.
  std::chrono::milliseconds remaining() const noexcept {
    uint64_t now = now_unix_ms();
    return std::chrono::milliseconds(unix_ms_ > now ? static_cast<int64_t>(unix_ms_ - now) : 0);
  }
  bool expired() const noexcept { return remaining().count() == 0; }

 private:
  uint64_t unix_ms_;
};

// Base class of every sink. Construct from (const Host&, const Config&): throwing from the
// constructor fails create() with the exception's message (say which key and value is wrong).
// The host creates and destroys instances on its main thread and calls deliver from one outlet
// thread per instance, never concurrently for one instance; at SHUTDOWN it calls flush once, from
// another host thread, after the last deliver returned, then destroys the instance (see
// sink_abi.h for when it cannot). Different instances (of this or other sinks) may run in
// parallel, so share nothing mutable between instances.
class Sink {
 public:
  Sink() = default;
  Sink(const Sink&) = delete;
  Sink& operator=(const Sink&) = delete;
  virtual ~Sink() = default;

  // Delivers one batch. [outlet-thread] May block, but should return by the deadline. Return
  // kOk, or fail(status, why). An exception counts as kDrop with its message: throw only for
  // what retrying cannot fix.
  virtual Status deliver(const Batch& batch, Deadline deadline) = 0;

  // Hands on what the sink buffers itself. [shutdown-thread] Once, at SHUTDOWN, after the last
  // deliver. kOk means nothing is left buffered; anything else is logged and reported as
  // flush_failed in the summary.
  virtual Status flush(Deadline /*deadline*/) { return Status::kOk; }

 protected:
  // Records why a delivery did not succeed (the host logs and counts it) and returns status:
  //   return fail(Status::kRetry, "HTTP 503 Service Unavailable");
  Status fail(Status status, std::string message) {
    error_ = std::move(message);
    return status;
  }
  // A transient failure whose server said when to come back (e.g. HTTP 429 with Retry-After):
  //   return retry_after(std::chrono::seconds(30), "HTTP 429 Too Many Requests");
  // The host waits at least that long (capped, and never past its own deadlines). From deliver()
  // only; a 1.0 host ignores the hint.
  Status retry_after(std::chrono::milliseconds wait, std::string message) {
    retry_after_ms_ = wait.count() > 0 ? static_cast<uint64_t>(wait.count()) : 0;
    return fail(Status::kRetry, std::move(message));
  }
  // The batch was deliberately discarded by configuration (e.g. no endpoint set): the host
  // counts it as discarded, not delivered. From deliver() only; a 1.0 host counts it delivered.
  Status discarded() {
    discarded_ = true;
    return Status::kOk;
  }
  // The receiver refused the batch as too large (e.g. HTTP 413): the host delivers it again in
  // halves, down to single events. From deliver() only; a 1.1 host drops the batch.
  //   return too_large("HTTP 413 Payload Too Large");
  Status too_large(std::string message) {
    too_large_ = true;
    return fail(Status::kDrop, std::move(message));
  }
  // The receiver took the batch but refused `count` of its events (e.g. an OTLP partial
  // success): the host counts them as dropped by the sink, the rest as delivered. Say why in a
  // log line of your own (once per kind, not per batch). From deliver() only; a host before 1.4
  // counts them delivered.
  Status partially_rejected(uint64_t count) {
    rejected_events_ = count;
    return Status::kOk;
  }

 private:
  template <class>
  friend struct detail::Glue;
  std::string error_;
  uint64_t retry_after_ms_ = 0;
  bool discarded_ = false;
  bool too_large_ = false;
  uint64_t rejected_events_ = 0;
};

namespace detail {

inline relay_status finish(std::string& error, Status status, relay_error* err) noexcept {
  relay_status result = to_abi(status);
  if (result != RELAY_OK) {
    if (error.empty()) {
      write_error(err, to_string(status));
    } else {
      write_error(err, error);
    }
  }
  error.clear();
  return result;
}

// Hands the host what deliver() said besides its status, when the host's batch has room for it.
inline void write_feedback(const relay_batch& batch, Status status, uint64_t retry_after_ms,
                           bool discarded, bool too_large, uint64_t rejected_events) noexcept {
  if (!covers(batch.struct_size, offsetof(relay_batch, feedback) + sizeof(batch.feedback)) ||
      batch.feedback == nullptr) {
    return;
  }
  relay_deliver_feedback& feedback = *batch.feedback;
  if (status == Status::kRetry && retry_after_ms > 0 &&
      covers(feedback.struct_size,
             offsetof(relay_deliver_feedback, retry_after_ms) + sizeof(feedback.retry_after_ms))) {
    feedback.retry_after_ms = retry_after_ms;
  }
  if (status == Status::kOk && discarded &&
      covers(feedback.struct_size,
             offsetof(relay_deliver_feedback, flags) + sizeof(feedback.flags))) {
    feedback.flags |= RELAY_FEEDBACK_DISCARDED;
  }
  if (status == Status::kDrop && too_large &&
      covers(feedback.struct_size,
             offsetof(relay_deliver_feedback, flags) + sizeof(feedback.flags))) {
    feedback.flags |= RELAY_FEEDBACK_TOO_LARGE;
  }
  if (status == Status::kOk && rejected_events > 0 &&
      covers(feedback.struct_size, offsetof(relay_deliver_feedback, rejected_events) +
                                       sizeof(feedback.rejected_events))) {
    feedback.rejected_events = rejected_events;
  }
}

// The C callbacks of one sink class: the exception barrier between the host and C++ code.
template <class SinkClass>
struct Glue {
  static relay_status create(const relay_host* host, const relay_kv* config, size_t config_count,
                             void** out_instance, relay_error* err) noexcept {
    if (out_instance == nullptr) {
      write_error(err, "create: out_instance is null");
      return RELAY_FATAL;
    }
    *out_instance = nullptr;
    try {
      Sink* sink = nullptr;
      if constexpr (requires { SinkClass::kConfigKeys; }) {
        // A 1.3 host has validated already (then this finds nothing to say); an older one has
        // not, and the sink must see the same effective values on any host.
        std::vector<std::pair<std::string_view, std::string_view>> given;
        for (size_t i = 0; config != nullptr && i < config_count; ++i) {
          given.emplace_back(view(config[i].key), view(config[i].value));
        }
        const ValidatedConfig checked = validate(SinkClass::kConfigKeys, given);
        const Host services(host);
        for (const KeyIssue& issue : checked.issues) {
          const bool secret = is_secret(SinkClass::kConfigKeys, issue.key);
          services.error(issue.key + "=" + (secret ? std::string("<redacted>") : issue.value) +
                         ": " + issue.problem +
                         (issue.unknown
                              ? std::string("; ignored")
                              : "; using " + (issue.fallback.empty() ? std::string("unset")
                                              : secret               ? std::string("<redacted>")
                                                                     : issue.fallback)));
        }
        std::vector<relay_kv> effective;
        for (const auto& [k, v] : checked.values) {
          effective.push_back({{k.data(), k.size()}, {v.data(), v.size()}});
        }
        sink = new SinkClass(services, Config(effective.data(), effective.size()));
      } else {
        sink = new SinkClass(Host(host), Config(config, config_count));
      }
      *out_instance = sink;
      return RELAY_OK;
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "create: unknown exception");
    }
    return RELAY_FATAL;
  }

  static relay_status deliver(void* instance, const relay_batch* batch, uint64_t deadline_unix_ms,
                              relay_error* err) noexcept {
    if (instance == nullptr || batch == nullptr) {
      write_error(err, "deliver: null instance or batch");
      return RELAY_DROP;
    }
    Sink* sink = static_cast<Sink*>(instance);
    try {
      sink->error_.clear();
      sink->retry_after_ms_ = 0;
      sink->discarded_ = false;
      sink->too_large_ = false;
      sink->rejected_events_ = 0;
      const Status status = sink->deliver(Batch(*batch), Deadline(deadline_unix_ms));
      write_feedback(*batch, status, sink->retry_after_ms_, sink->discarded_, sink->too_large_,
                     sink->rejected_events_);
      return finish(sink->error_, status, err);
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "deliver: unknown exception");
    }
    return RELAY_DROP;
  }

  static relay_status flush(void* instance, uint64_t deadline_unix_ms, relay_error* err) noexcept {
    if (instance == nullptr) {
      write_error(err, "flush: null instance");
      return RELAY_DROP;
    }
    Sink* sink = static_cast<Sink*>(instance);
    try {
      sink->error_.clear();
      return finish(sink->error_, sink->flush(Deadline(deadline_unix_ms)), err);
    } catch (const std::exception& e) {
      write_error(err, e.what());
    } catch (...) {
      write_error(err, "flush: unknown exception");
    }
    return RELAY_DROP;
  }

  static void destroy(void* instance) noexcept {
    try {
      delete static_cast<Sink*>(instance);
    } catch (...) {
      // A throwing destructor would terminate the host; there is nobody to tell.
    }
  }

  static constexpr relay_sink_descriptor descriptor(const char* name, const char* version) {
    const relay_config_key* keys = nullptr;
    size_t key_count = 0;
    if constexpr (requires { SinkClass::kConfigKeys; }) {
      keys = SinkClass::kConfigKeys;
      key_count = std::size(SinkClass::kConfigKeys);
    }
    return relay_sink_descriptor{RELAY_ABI_MAJOR,
                                 RELAY_ABI_MINOR,
                                 sizeof(relay_sink_descriptor),
                                 name,
                                 version,
                                 &create,
                                 &deliver,
                                 &flush,
                                 &destroy,
                                 keys,
                                 key_count};
  }
};

}  // namespace detail
}  // namespace relay::sdk

// Generates the plugin's one exported symbol, relay_sink_entry, for Class (a relay::sdk::Sink
// constructible from (const Host&, const Config&)). Use once per plugin, at namespace scope:
//   RELAY_SINK_PLUGIN(MySink, "my-sink", "1.0.0");
// The entry refuses (returns NULL) a host of another ABI major; the host reports the mismatch.
#define RELAY_SINK_PLUGIN(Class, name, version)                                                    \
  extern "C" __attribute__((visibility("default"))) const relay_sink_descriptor* relay_sink_entry( \
      uint32_t host_abi_major, uint32_t host_abi_minor);                                           \
  extern "C" __attribute__((visibility("default"))) const relay_sink_descriptor* relay_sink_entry( \
      uint32_t host_abi_major, uint32_t /*host_abi_minor*/) {                                      \
    static constexpr relay_sink_descriptor kDescriptor =                                           \
        ::relay::sdk::detail::Glue<Class>::descriptor(name, version);                              \
    return host_abi_major == RELAY_ABI_MAJOR ? &kDescriptor : nullptr;                             \
  }                                                                                                \
  static_assert(::std::is_base_of_v<::relay::sdk::Sink, Class> &&                                  \
                    ::std::is_constructible_v<Class, const ::relay::sdk::Host&,                    \
                                              const ::relay::sdk::Config&>,                        \
                "RELAY_SINK_PLUGIN: " #Class                                                       \
                " must derive from relay::sdk::Sink and be constructible from "                    \
                "(const relay::sdk::Host&, const relay::sdk::Config&)")
