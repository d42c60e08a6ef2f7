// What the telemetry listener hands POSTs to (post_consumer.h), mocked.
#pragma once

#include <gmock/gmock.h>

#include "post_consumer.h"

namespace relay::testing {

class MockPostConsumer : public PostConsumer {
 public:
  MOCK_METHOD(void, consume, (TelemetryPost &&), (override));
};

}  // namespace relay::testing
