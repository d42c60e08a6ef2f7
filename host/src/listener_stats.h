// What the telemetry listener accepted and refused, by reason, for the summary line (README
// "Loss summary"). The listener's threads write it; anyone may read it at any time: each counter
// is exact, a snapshot across counters is not atomic.
#pragma once

#include <atomic>
#include <cstdint>

namespace relay {

// Requests and body bytes of one kind of answer.
struct RequestTally {
  uint64_t requests = 0;
  uint64_t bytes = 0;
};

// A plain copy of ListenerStats.
struct ListenerCounters {
  RequestTally accepted;            // answered 200: POSTs handed to the pipeline
  uint64_t accepted_events = 0;     // events in those POSTs
  uint64_t invalid_events = 0;      // elements of those POSTs dropped as not valid JSON events
  RequestTally bad_request;         // 400: not a JSON array, a body shorter than announced, or
                                    // a request POCO cannot take apart (e.g. Content-Length: abc)
  RequestTally method_not_allowed;  // 405: anything but POST
  RequestTally too_large;           // 413: over RELAY_LISTENER_MAX_BODY_BYTES
  RequestTally internal_error;      // 500: the pipeline threw (Lambda retries the batch)

  RequestTally rejected() const {
    return {bad_request.requests + method_not_allowed.requests + too_large.requests +
                internal_error.requests,
            bad_request.bytes + method_not_allowed.bytes + too_large.bytes + internal_error.bytes};
  }
};

struct ListenerStats {
  std::atomic<uint64_t> posts{0};  // answered 200
  std::atomic<uint64_t> events{0};
  std::atomic<uint64_t> invalid_events{0};  // dropped from POSTs answered 200
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> rejected_malformed{0};  // answered 400
  std::atomic<uint64_t> rejected_malformed_bytes{0};
  std::atomic<uint64_t> rejected_method{0};  // answered 405
  std::atomic<uint64_t> rejected_method_bytes{0};
  std::atomic<uint64_t> rejected_too_large{0};  // answered 413
  std::atomic<uint64_t> rejected_too_large_bytes{0};
  std::atomic<uint64_t> internal_errors{0};  // answered 500
  std::atomic<uint64_t> internal_error_bytes{0};

  ListenerCounters snapshot() const {
    auto get = [](const std::atomic<uint64_t>& value) {
      return value.load(std::memory_order_relaxed);
    };
    ListenerCounters c;
    c.accepted = {get(posts), get(bytes)};
    c.accepted_events = get(events);
    c.invalid_events = get(invalid_events);
    c.bad_request = {get(rejected_malformed), get(rejected_malformed_bytes)};
    c.method_not_allowed = {get(rejected_method), get(rejected_method_bytes)};
    c.too_large = {get(rejected_too_large), get(rejected_too_large_bytes)};
    c.internal_error = {get(internal_errors), get(internal_error_bytes)};
    return c;
  }
};

}  // namespace relay
