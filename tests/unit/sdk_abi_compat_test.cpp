// ABI 1.1 compatibility: a plugin built against 1.0 keeps working on this host (and its stale
// memory is never read as feedback); a 1.1 plugin's batch id and feedback travel both ways; the
// SDK's views honour struct_size in both directions.
#include <gtest/gtest.h>

#include <string>
#include <telemetry_relay/sink.hpp>
#include <telemetry_relay/testing.hpp>

#include "dl_sink.h"
#include "outlet.h"
#include "test_support.h"

namespace {

struct PluginCall {
  uint32_t struct_size = 0;
  std::string json;
  std::string batch_id;
  size_t events = 0;
};
PluginCall last_call;
relay_status answer = RELAY_OK;

// A plugin that writes every feedback field it is handed, whatever its declared ABI: the host
// must ignore what a 1.0 plugin leaves there (a 1.0 plugin could not know the slot is feedback).
relay_status scribbling_deliver(void*, const relay_batch* batch, uint64_t, relay_error*) {
  last_call.struct_size = batch->struct_size;
  last_call.json.assign(batch->json.data, batch->json.size);
  last_call.events = batch->count;
  if (batch->struct_size >= offsetof(relay_batch, feedback) + sizeof(batch->feedback)) {
    last_call.batch_id.assign(batch->batch_id.data, batch->batch_id.size);
    if (batch->feedback != nullptr) {
      batch->feedback->retry_after_ms = 4321;
      batch->feedback->flags = RELAY_FEEDBACK_DISCARDED;
    }
  }
  return answer;
}
void no_destroy(void*) {}

relay_sink_descriptor descriptor_of(uint32_t minor) {
  relay_sink_descriptor descriptor{};
  descriptor.abi_major = 1;
  descriptor.abi_minor = minor;
  descriptor.struct_size = sizeof(relay_sink_descriptor);
  descriptor.name = "compat";
  descriptor.version = "1.0.0";
  descriptor.deliver = &scribbling_deliver;
  descriptor.destroy = &no_destroy;
  return descriptor;
}

relay::Delivery sample_delivery() {
  static const relay::TelemetryPost batch = relay::testing::make_batch(2);
  relay::Delivery delivery;
  delivery.batch_id = "00112233445566778899aabbccddeeff";
  delivery.json = *batch.body;
  delivery.events = batch.events;  // views into the static body
  return delivery;
}

relay::DeliveryResult deliver_through(const relay_sink_descriptor& descriptor,
                                      relay_status status) {
  answer = status;
  int instance = 0;
  relay::DlSink sink("compat", boost::dll::shared_library(), &descriptor,
                     std::make_unique<relay::HostServices>("compat"), &instance);
  return sink.deliver(sample_delivery(), relay::now_unix_ms() + 1000);
}

TEST(AbiCompat, APluginBuiltFor10DeliversAndItsLeftoversAreNotFeedback) {
  const relay_sink_descriptor old = descriptor_of(0);
  relay::DeliveryResult result = deliver_through(old, RELAY_OK);
  EXPECT_EQ(result.status, relay::DeliveryStatus::kOk);
  EXPECT_FALSE(result.discarded);
  EXPECT_EQ(last_call.json, sample_delivery().json);
  EXPECT_EQ(last_call.events, 2u);
  result = deliver_through(old, RELAY_RETRY);
  EXPECT_EQ(result.status, relay::DeliveryStatus::kRetry);
  EXPECT_EQ(result.retry_after_ms, 0u);
}

TEST(AbiCompat, APluginBuiltFor11GetsTheIdAndIsHeard) {
  const relay_sink_descriptor current = descriptor_of(1);
  relay::DeliveryResult result = deliver_through(current, RELAY_OK);
  EXPECT_TRUE(result.discarded);
  EXPECT_EQ(last_call.struct_size, sizeof(relay_batch));
  EXPECT_EQ(last_call.batch_id, "00112233445566778899aabbccddeeff");
  result = deliver_through(current, RELAY_RETRY);
  EXPECT_EQ(result.status, relay::DeliveryStatus::kRetry);
  EXPECT_EQ(result.retry_after_ms, 4321u);
  EXPECT_FALSE(result.discarded);  // the flag only counts with OK
}

TEST(AbiCompat, TheSdkBatchViewOfA10BatchHasNoId) {
  relay::sdk::testing::BatchBuilder builder;
  builder.add(R"({"time":"t","type":"function","record":"x"})");
  relay_batch batch = builder.build();
  EXPECT_EQ(relay::sdk::Batch(batch).id(), relay::sdk::testing::BatchBuilder::kDefaultId);
  batch.struct_size = offsetof(relay_batch, batch_id);  // a 1.0 host
  const relay::sdk::Batch view(batch);
  EXPECT_TRUE(view.id().empty());
  EXPECT_EQ(view.size(), 1u);
  EXPECT_EQ(view.json(), R"([{"time":"t","type":"function","record":"x"}])");
}

class HintingSink final : public relay::sdk::Sink {
 public:
  HintingSink(const relay::sdk::Host&, const relay::sdk::Config&) {}
  relay::sdk::Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline) override {
    if (batch.json().find("discard") != std::string_view::npos) return discarded();
    return retry_after(std::chrono::seconds(5), "HTTP 429");
  }
};
using Glue = relay::sdk::detail::Glue<HintingSink>;

TEST(AbiCompat, TheSdkWritesFeedbackOnlyWhereTheHostMadeRoom) {
  relay::sdk::testing::FakeHost host;
  const relay_sink_descriptor descriptor = Glue::descriptor("hinting", "1.0.0");
  auto sink = relay::sdk::testing::SinkInstance::create(descriptor, host);
  ASSERT_TRUE(sink.created());
  relay::sdk::testing::BatchBuilder builder;
  builder.add(R"({"time":"t","type":"function","record":"x"})");

  auto outcome = sink.deliver(builder.build());
  EXPECT_EQ(outcome.status, RELAY_RETRY);
  EXPECT_EQ(outcome.error, "HTTP 429");
  EXPECT_EQ(outcome.retry_after_ms, 5000u);

  // A host whose feedback struct ends before retry_after_ms.
  relay_batch batch = builder.build();
  relay_deliver_feedback small{};
  small.struct_size = offsetof(relay_deliver_feedback, retry_after_ms);
  batch.feedback = &small;
  char text[64] = {};
  relay_error err{text, sizeof(text)};
  EXPECT_EQ(descriptor.deliver(nullptr, &batch, 0, &err), RELAY_DROP);  // null instance
  void* instance = nullptr;
  ASSERT_EQ(descriptor.create(host, nullptr, 0, &instance, &err), RELAY_OK);
  EXPECT_EQ(descriptor.deliver(instance, &batch, relay::sdk::Deadline::in({}).unix_ms(), &err),
            RELAY_RETRY);
  EXPECT_EQ(small.retry_after_ms, 0u);

  // A 1.0 host: no feedback at all, even with a pointer where the field would be.
  relay_deliver_feedback beyond{};
  beyond.struct_size = sizeof(beyond);
  batch.struct_size = offsetof(relay_batch, batch_id);
  batch.feedback = &beyond;
  EXPECT_EQ(descriptor.deliver(instance, &batch, relay::sdk::Deadline::in({}).unix_ms(), &err),
            RELAY_RETRY);
  EXPECT_EQ(beyond.retry_after_ms, 0u);

  builder.add(R"({"time":"t","type":"function","record":"discard"})");
  outcome = sink.deliver(builder.build());
  EXPECT_TRUE(outcome.ok());
  EXPECT_TRUE(outcome.discarded);
  descriptor.destroy(instance);
}

}  // namespace
