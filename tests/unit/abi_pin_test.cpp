// Pins the plugin ABI: any edit of sink_abi.h fails here until the version and the pin are
// updated together, and the layout asserts catch a change that would break built plugins.
#include <Poco/DigestEngine.h>
#include <Poco/SHA2Engine.h>
#include <gtest/gtest.h>
#include <telemetry_relay/sink_abi.h>

#include <cstddef>
#include <fstream>
#include <iterator>
#include <string>

namespace {

// Update all three together, and only after deciding the version bump (see the header's top).
constexpr unsigned kPinnedMajor = 1;
constexpr unsigned kPinnedMinor = 4;
constexpr const char* kPinnedSha256 =
    "fc232065950ccc51bf948084cab8739b6ba930afb59c0cb2944924d9b38042cd";

#if defined(__LP64__) && (defined(__x86_64__) || defined(__aarch64__))
// The layout every released plugin was compiled against (LP64, x86_64 and aarch64 Lambda).
static_assert(sizeof(relay_status) == 4 && sizeof(relay_log_level) == 4);
static_assert(sizeof(relay_str) == 16 && offsetof(relay_str, size) == 8);
static_assert(sizeof(relay_kv) == 32 && offsetof(relay_kv, value) == 16);
static_assert(sizeof(relay_error) == 16 && offsetof(relay_error, capacity) == 8);
static_assert(sizeof(relay_event) == 64 && offsetof(relay_event, type) == 16 &&
              offsetof(relay_event, time) == 32 && offsetof(relay_event, record) == 48);
static_assert(sizeof(relay_batch) == 80 && offsetof(relay_batch, struct_size) == 0 &&
              offsetof(relay_batch, events) == 8 && offsetof(relay_batch, count) == 16 &&
              offsetof(relay_batch, json) == 24);
// 1.1 appended batch_id and feedback: a 1.0 plugin sees the first 40 bytes unchanged.
static_assert(offsetof(relay_batch, batch_id) == 40 && offsetof(relay_batch, feedback) == 56);
// 1.4 appended function_arn to the batch and rejected_events to the feedback.
static_assert(offsetof(relay_batch, function_arn) == 64 &&
              offsetof(relay_deliver_feedback, rejected_events) == 16);
static_assert(sizeof(relay_deliver_feedback) == 24 &&
              offsetof(relay_deliver_feedback, struct_size) == 0 &&
              offsetof(relay_deliver_feedback, flags) == 4 &&
              offsetof(relay_deliver_feedback, retry_after_ms) == 8);
static_assert(sizeof(relay_host) == 40 && offsetof(relay_host, abi_major) == 0 &&
              offsetof(relay_host, abi_minor) == 4 && offsetof(relay_host, struct_size) == 8 &&
              offsetof(relay_host, host_version) == 16 && offsetof(relay_host, host_ctx) == 24 &&
              offsetof(relay_host, log) == 32);
// 1.3 appended config_keys: a 1.2 plugin's descriptor ends at 64 bytes.
static_assert(sizeof(relay_config_key) == 56 && offsetof(relay_config_key, type) == 8 &&
              offsetof(relay_config_key, flags) == 12 &&
              offsetof(relay_config_key, default_value) == 16 &&
              offsetof(relay_config_key, min) == 24 && offsetof(relay_config_key, max) == 32 &&
              offsetof(relay_config_key, choices) == 40 && offsetof(relay_config_key, help) == 48);
static_assert(offsetof(relay_sink_descriptor, config_keys) == 64 &&
              offsetof(relay_sink_descriptor, config_key_count) == 72);
static_assert(sizeof(relay_sink_descriptor) == 80 &&
              offsetof(relay_sink_descriptor, abi_major) == 0 &&
              offsetof(relay_sink_descriptor, abi_minor) == 4 &&
              offsetof(relay_sink_descriptor, struct_size) == 8 &&
              offsetof(relay_sink_descriptor, name) == 16 &&
              offsetof(relay_sink_descriptor, version) == 24 &&
              offsetof(relay_sink_descriptor, create) == 32 &&
              offsetof(relay_sink_descriptor, deliver) == 40 &&
              offsetof(relay_sink_descriptor, flush) == 48 &&
              offsetof(relay_sink_descriptor, destroy) == 56);
#endif

static_assert(RELAY_OK == 0 && RELAY_RETRY == 1 && RELAY_DROP == 2 && RELAY_FATAL == 3);
static_assert(RELAY_FEEDBACK_DISCARDED == 1 && RELAY_FEEDBACK_TOO_LARGE == 2);
static_assert(RELAY_LOG_ERROR == 0 && RELAY_LOG_WARN == 1 && RELAY_LOG_INFO == 2 &&
              RELAY_LOG_DEBUG == 3);

std::string header_sha256() {
  std::ifstream in(RELAY_SOURCE_DIR "/sdk/include/telemetry_relay/sink_abi.h", std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) {
    return "unreadable";
  }
  // A checkout with CRLF line endings is the same header.
  std::string normalized;
  normalized.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    if (!(text[i] == '\r' && i + 1 < text.size() && text[i + 1] == '\n')) {
      normalized += text[i];
    }
  }
  Poco::SHA2Engine engine(Poco::SHA2Engine::SHA_256);
  engine.update(normalized);
  return Poco::DigestEngine::digestToHex(engine.digest());
}

TEST(AbiPin, HeaderMatchesThePinnedVersion) {
  EXPECT_EQ(header_sha256(), kPinnedSha256)
      << "sdk/include/telemetry_relay/sink_abi.h changed. Plugins already built depend on it:\n"
         "  - appended a field (struct_size covers the rest)? bump RELAY_ABI_MINOR;\n"
         "  - changed a field's meaning, type or position? bump RELAY_ABI_MAJOR;\n"
         "  - comment-only edit? no bump needed.\n"
         "Then update kPinnedSha256 (and kPinnedMajor/kPinnedMinor) in "
         "tests/unit/abi_pin_test.cpp.";
  EXPECT_EQ(RELAY_ABI_MAJOR, kPinnedMajor)
      << "RELAY_ABI_MAJOR changed: update kPinnedMajor and the hash pin together.";
  EXPECT_EQ(RELAY_ABI_MINOR, kPinnedMinor)
      << "RELAY_ABI_MINOR changed: update kPinnedMinor and the hash pin together.";
}

}  // namespace
