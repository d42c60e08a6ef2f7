#include "function_arn.h"

#include <atomic>
#include <string>

namespace relay {
namespace {

// Written once by one thread, then only read: the flag's release/acquire publishes the string.
std::string published;
std::atomic<bool> ready{false};

}  // namespace

void publish_function_arn(std::string_view arn) {
  if (arn.empty() || ready.load(std::memory_order_relaxed)) return;
  published.assign(arn);
  ready.store(true, std::memory_order_release);
}

std::string_view function_arn() {
  return ready.load(std::memory_order_acquire) ? std::string_view(published) : std::string_view();
}

}  // namespace relay
