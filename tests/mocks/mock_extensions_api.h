// Lambda's Extensions API (extensions_api.h), mocked: what the lifecycle and main's steps call.
#pragma once

#include <gmock/gmock.h>

#include <string>
#include <vector>

#include "extensions_api.h"

namespace relay::testing {

class MockExtensionsApi : public ExtensionsApi {
 public:
  MOCK_METHOD(Registration, register_extension,
              (const std::string&, const std::vector<std::string>&), (override));
  MOCK_METHOD(LifecycleEvent, next, (), (override));
  MOCK_METHOD(SubscribeResult, subscribe, (const SubscribeRequest&), (override));
  MOCK_METHOD(bool, init_error, (const std::string&, const std::string&), (override));
  MOCK_METHOD(bool, exit_error, (const std::string&, const std::string&), (override));
};

}  // namespace relay::testing
