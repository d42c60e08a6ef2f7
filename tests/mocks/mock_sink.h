// The host's Sink interface (sink.h), mocked: what an outlet calls.
#pragma once

#include <gmock/gmock.h>

#include <string>

#include "sink.h"

namespace relay::testing {

class MockSink : public Sink {
 public:
  explicit MockSink(std::string name = "mock") : name_(std::move(name)) {}
  const std::string& name() const override { return name_; }
  MOCK_METHOD(DeliveryResult, deliver, (const Delivery&, uint64_t), (override));
  MOCK_METHOD(DeliveryResult, flush, (uint64_t), (override));
  MOCK_METHOD(void, destroy, (), (override));

 private:
  std::string name_;
};

}  // namespace relay::testing
