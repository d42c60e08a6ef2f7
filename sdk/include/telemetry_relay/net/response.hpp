// telemetry_relay/net/response.hpp: how the network toolkit reads and judges a receiver's answer
// to one request. Header-only so that tests/fuzz/fuzz_http_response.cpp drives this very code
// with POCO's client session.
//
// Classification: 2xx OK; 408, 429, 5xx, 101 and transport errors RETRY (429 and 503 with their
// Retry-After, seconds or HTTP-date, uncapped: the host caps it); 413 DROP as too large (the
// host delivers the batch again in halves); 3xx (redirects are never followed) and every other
// status DROP. Interim 1xx answers are skipped. Nothing here answers FATAL: that is the sink's
// call (e.g. an unreadable CA bundle).
#pragma once

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <string>
#include <telemetry_relay/net/support.hpp>
#include <telemetry_relay/sink.hpp>

namespace relay::sdk::net {

// Bytes of a response body (or reason phrase) quoted in an error line.
inline constexpr size_t kExcerptBytes = 200;
inline constexpr size_t kReasonBytes = 64;
// A larger error body is not worth draining to keep the connection: reconnect instead.
inline constexpr size_t kMaxDrainBytes = 64 * 1024;
// Interim answers (102 Processing, 103 Early Hints...) accepted before the final one: a receiver
// sending more is broken, and each one costs a read.
inline constexpr int kMaxInterimResponses = 8;

// The outcome of one request.
struct Attempt {
  Status status = Status::kRetry;
  int http_status = 0;           // 0 without a final response
  std::string error;             // empty when OK; printable, never a secret
  bool lost_connection = false;  // failed before any response: safe to resend once
  bool too_large = false;        // HTTP 413: the host may deliver the batch again in halves
  uint64_t retry_after_ms = 0;   // from a 429/503's Retry-After
};

// The final answer to a request, and whether its connection may carry the next request.
struct Answer {
  Attempt attempt;
  bool reusable = false;
};

inline bool retryable_status(int status) { return status == 408 || status == 429 || status >= 500; }

// The statuses whose Retry-After RFC 9110 defines for "come back later".
inline bool honours_retry_after(int status) { return status == 429 || status == 503; }

struct Body {
  std::string head;  // the first kExcerptBytes + 1 bytes, enough to tell "truncated"
  bool complete = false;
};

// Reads the response body, keeping its start for error text. Drains a modest rest so the
// connection stays usable; a larger one is abandoned with the connection.
inline Body read_body(std::istream& in) {
  Body body;
  char buffer[4096];
  size_t total = 0;
  while (in && total <= kMaxDrainBytes) {
    in.read(buffer, sizeof(buffer));
    const auto n = static_cast<size_t>(in.gcount());
    if (body.head.size() <= kExcerptBytes) {
      body.head.append(buffer, std::min(n, kExcerptBytes + 1 - body.head.size()));
    }
    total += n;
  }
  body.complete = in.eof() && !in.bad();
  return body;
}

// Judges a final response (status 200-599 except 1xx) whose body starts with `head`.
inline Attempt classify(const Poco::Net::HTTPResponse& response, const std::string& head,
                        Poco::Timestamp now) {
  Attempt attempt;
  const int status = static_cast<int>(response.getStatus());
  attempt.http_status = status;
  if (status >= 200 && status < 300) {
    attempt.status = Status::kOk;
    return attempt;
  }
  attempt.error =
      "HTTP " + std::to_string(status) + " " + printable(response.getReason(), kReasonBytes);
  if (status >= 300 && status < 400) {
    // Following would re-send the batch (and its credentials) elsewhere. The body is not quoted:
    // it usually repeats the Location, path and query included.
    attempt.status = Status::kDrop;
    const std::string location = response.get("Location", "");
    const std::optional<std::string> where = redacted_uri(location);
    attempt.error += ": redirects are not followed (Location: " +
                     (where              ? *where
                      : location.empty() ? "none"
                                         : "a relative reference") +
                     ")";
    return attempt;
  }
  attempt.status = retryable_status(status) ? Status::kRetry : Status::kDrop;
  attempt.too_large = status == 413;
  if (honours_retry_after(status) && response.has("Retry-After")) {
    attempt.retry_after_ms = parse_retry_after_ms(response.get("Retry-After"), now);
    if (attempt.retry_after_ms > 0) {
      attempt.error += " (Retry-After " + std::to_string(attempt.retry_after_ms) + " ms)";
    }
  }
  if (!head.empty()) {
    attempt.error += ": " + printable(head, kExcerptBytes);
  }
  return attempt;
}

// Reads the answer to the request just sent on `http`. Interim 1xx responses are skipped (POCO
// skips only 100): taking one for the answer would leave the real one on the connection, to be
// read as the answer to the next request. Throws Poco::Exception when the connection breaks or
// does not speak HTTP; `responded` then tells whether a response (an interim one included) came
// first, i.e. the receiver has the request and resending it at once is no cure.
inline Answer receive_answer(Poco::Net::HTTPClientSession& http, Poco::Timestamp now,
                             bool& responded) {
  Poco::Net::HTTPResponse response;
  std::istream* in = &http.receiveResponse(response);
  responded = true;
  const auto status = [&] { return static_cast<int>(response.getStatus()); };
  Answer answer;
  for (int interim = 0; status() >= 100 && status() < 200 && status() != 101; ++interim) {
    if (interim == kMaxInterimResponses) {
      answer.attempt.error = "more than " + std::to_string(kMaxInterimResponses) +
                             " interim (1xx) responses; reconnecting";
      return answer;
    }
    in = &http.receiveResponse(response);  // an interim response has no body
  }
  answer.attempt.http_status = status();
  if (status() == 101 || status() < 100 || status() > 599) {
    // 101: the connection now speaks another protocol, which a POST never asks for.
    answer.attempt.error = "HTTP " + std::to_string(status()) + " " +
                           printable(response.getReason(), kReasonBytes) +
                           ": not a valid answer to a POST; reconnecting";
    return answer;
  }
  const Body body = read_body(*in);
  answer.attempt = classify(response, body.head, now);
  answer.reusable = response.getKeepAlive() && body.complete;
  return answer;
}

}  // namespace relay::sdk::net
