#include "dl_sink.h"

#include <array>
#include <cstring>
#include <iterator>
#include <utility>

#include "function_arn.h"
#include "logging.h"
#include "version.h"

namespace relay {
namespace {

void log_from_plugin(void* host_ctx, relay_log_level level, const char* message) {
  if (host_ctx == nullptr || message == nullptr) {
    return;
  }
  auto* services = static_cast<HostServices*>(host_ctx);
  Poco::Logger& log = *services->log;
  // Never copy a huge message whole only to cut it: the formatter keeps this much.
  const std::string text(message, strnlen(message, kMaxLogMessageBytes + 1));
  switch (level) {
    case RELAY_LOG_ERROR:
      log.error(text);
      break;
    case RELAY_LOG_WARN:
      log.warning(text);
      break;
    case RELAY_LOG_INFO:
      log.information(text);
      break;
    default:
      log.debug(text);
      break;
  }
}

relay_str view(std::string_view text) { return relay_str{text.data(), text.size()}; }

// Host-owned error text; plugins write at most its capacity, NUL included.
struct ErrorBuffer {
  std::array<char, 512> text{};
  relay_error abi{text.data(), text.size()};
  std::string str() const { return std::string(text.data(), strnlen(text.data(), text.size())); }
};

DeliveryResult result_of(relay_status status, const ErrorBuffer& error) {
  DeliveryResult result{from_abi(status), {}};
  if (result.status != DeliveryStatus::kOk) {
    result.error = error.str();
    if (status != RELAY_OK && status != RELAY_RETRY && status != RELAY_DROP &&
        status != RELAY_FATAL) {
      result.error = "unknown status " + std::to_string(static_cast<int>(status)) +
                     " (treated as DROP)" + (result.error.empty() ? "" : ": " + result.error);
    }
  }
  return result;
}

}  // namespace

HostServices::HostServices(std::string name)
    : sink_name(std::move(name)), log(&logger("sink." + sink_name)) {
  table.abi_major = RELAY_ABI_MAJOR;
  table.abi_minor = RELAY_ABI_MINOR;
  table.struct_size = sizeof(relay_host);
  table.host_version = RELAY_VERSION;
  table.host_ctx = this;
  table.log = &log_from_plugin;
}

DeliveryStatus from_abi(relay_status status) {
  switch (status) {
    case RELAY_OK:
      return DeliveryStatus::kOk;
    case RELAY_RETRY:
      return DeliveryStatus::kRetry;
    case RELAY_FATAL:
      return DeliveryStatus::kFatal;
    case RELAY_DROP:
    default:  // the ABI promises unknown values mean DROP
      return DeliveryStatus::kDrop;
  }
}

DlSink::DlSink(std::string name, boost::dll::shared_library library,
               const relay_sink_descriptor* descriptor, std::unique_ptr<HostServices> services,
               void* instance)
    : library_(std::move(library)),
      name_(std::move(name)),
      descriptor_(descriptor),
      services_(std::move(services)),
      crash_site_(crash_site(name_)),
      instance_(instance),
      reads_feedback_(descriptor->abi_major > 1 ||
                      (descriptor->abi_major == 1 && descriptor->abi_minor >= 1)) {}

DlSink::~DlSink() { destroy(); }

void DlSink::destroy() {
  if (instance_ == nullptr) return;
  void* instance = std::exchange(instance_, nullptr);
  in_plugin_call(crash_site_, PluginCall::kDestroy, [&] { descriptor_->destroy(instance); });
}

DeliveryResult DlSink::deliver(const Delivery& delivery, uint64_t deadline_unix_ms) {
  events_.clear();
  events_.reserve(delivery.events.size());
  for (const TelemetryEvent& event : delivery.events) {
    events_.push_back(
        relay_event{view(event.json), view(event.type), view(event.time), view(event.record)});
  }
  relay_deliver_feedback feedback{};
  feedback.struct_size = sizeof(feedback);
  const std::string_view arn = function_arn();
  relay_batch batch{sizeof(relay_batch),
                    events_.data(),
                    events_.size(),
                    view(delivery.json),
                    view(delivery.batch_id),
                    &feedback,
                    relay_str{arn.data(), arn.size()}};
  ErrorBuffer error;
  const relay_status status = in_plugin_call(
      crash_site_, PluginCall::kDeliver, delivery.batch_id,
      [&] { return descriptor_->deliver(instance_, &batch, deadline_unix_ms, &error.abi); });
  DeliveryResult result = result_of(status, error);
  // A plugin built before ABI 1.1 knows nothing of the feedback slot: ignore whatever is there.
  if (reads_feedback_) {
    if (result.status == DeliveryStatus::kRetry) result.retry_after_ms = feedback.retry_after_ms;
    if (result.status == DeliveryStatus::kOk) {
      result.discarded = (feedback.flags & RELAY_FEEDBACK_DISCARDED) != 0;
      result.rejected_events = feedback.rejected_events;  // zeroed above: 0 from older plugins
    }
    if (result.status == DeliveryStatus::kDrop) {
      result.too_large = (feedback.flags & RELAY_FEEDBACK_TOO_LARGE) != 0;
    }
  }
  return result;
}

DeliveryResult DlSink::flush(uint64_t deadline_unix_ms) {
  if (descriptor_->flush == nullptr) {
    return {};
  }
  ErrorBuffer error;
  const relay_status status = in_plugin_call(crash_site_, PluginCall::kFlush, [&] {
    return descriptor_->flush(instance_, deadline_unix_ms, &error.abi);
  });
  return result_of(status, error);
}

const char* to_string(DeliveryStatus status) {
  // In the enum's order.
  static constexpr const char* kNames[] = {"OK", "RETRY", "DROP", "FATAL"};
  const auto index = static_cast<size_t>(status);
  return index < std::size(kNames) ? kNames[index] : "DROP";
}

}  // namespace relay
