// telemetry_relay/net/response.hpp: how the network toolkit reads and judges a receiver's answer
// to one request. Header-only so that tests/fuzz/fuzz_http_response.cpp drives this very code
// with POCO's client session.
//
// Classification: 2xx OK; 408, 429, 5xx, 101 and transport errors RETRY (429 and 503 with their
// Retry-After, seconds or HTTP-date, uncapped: the host caps it); 413 DROP as too large (the
// host delivers the batch again in halves); 3xx (redirects are never followed) and every other
// status DROP. Interim 1xx answers are skipped. Nothing here answers FATAL: that is the sink's
// call (e.g. an unreadable CA bundle). A sink may list the statuses it retries instead
// (AnswerRules::retry_statuses, e.g. OTLP's 429, 502, 503, 504): then exactly those 4xx/5xx are
// retried, each with its Retry-After, and every other 4xx/5xx is dropped; 2xx, 3xx, 101, 413 and
// transport errors are judged as above.
#pragma once

#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <istream>
#include <optional>
#include <span>
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
// The most of a 2xx body a sink may keep (AnswerRules::max_success_body): all of it is drained.
inline constexpr size_t kMaxSuccessBody = kMaxDrainBytes;
// Bytes of a response's Content-Type kept (printable): enough for any real media type.
inline constexpr size_t kContentTypeBytes = 128;

// The outcome of one request.
struct Attempt {
  Status status = Status::kRetry;
  int http_status = 0;           // 0 without a final response
  std::string error;             // empty when OK; printable, never a secret
  bool lost_connection = false;  // failed before any response: safe to resend once
  bool too_large = false;        // HTTP 413: the host may deliver the batch again in halves
  uint64_t retry_after_ms = 0;   // from a 429/503's Retry-After (or a listed retry status's)
  // Of a 2xx answer, with AnswerRules::max_success_body > 0: its first max_success_body bytes,
  // and whether there was more (or the body ended early).
  std::string body{};
  bool body_truncated = false;
  // The final response's Content-Type (printable, cut at kContentTypeBytes; empty without one),
  // e.g. to tell an OTLP answer from a proxy's HTML page.
  std::string content_type{};
};

// How a sink judges answers beyond the default (ClientOptions carries them to the client).
struct AnswerRules {
  // Empty: the default rule (408, 429, 5xx retried; Retry-After on 429 and 503). Otherwise the
  // 4xx/5xx statuses retried, each with its Retry-After; every other 4xx/5xx but 413 is dropped.
  std::span<const int> retry_statuses{};
  // Of a 2xx body, the bytes kept in Attempt::body (at most kMaxSuccessBody); 0: none.
  size_t max_success_body = 0;
};

// The final answer to a request, and whether its connection may carry the next request.
struct Answer {
  Attempt attempt;
  bool reusable = false;
};

inline bool retryable_status(int status) { return status == 408 || status == 429 || status >= 500; }

// The statuses whose Retry-After RFC 9110 defines for "come back later".
inline bool honours_retry_after(int status) { return status == 429 || status == 503; }

inline bool listed(std::span<const int> statuses, int status) {
  return std::find(statuses.begin(), statuses.end(), status) != statuses.end();
}

struct Body {
  std::string head;  // the first `keep` bytes (kExcerptBytes + 1: enough to tell "truncated")
  bool complete = false;
};

// Reads the response body, keeping its first `keep` bytes (at most kMaxDrainBytes + 1) for
// error text or the sink. Drains a modest rest so the connection stays usable; a larger one is
// abandoned with the connection.
inline Body read_body(std::istream& in, size_t keep = kExcerptBytes + 1) {
  Body body;
  char buffer[4096];
  size_t total = 0;
  while (in && total <= kMaxDrainBytes) {
    in.read(buffer, sizeof(buffer));
    const auto n = static_cast<size_t>(in.gcount());
    if (body.head.size() < keep) body.head.append(buffer, std::min(n, keep - body.head.size()));
    total += n;
  }
  body.complete = in.eof() && !in.bad();
  return body;
}

// Judges a final response (status 200-599 except 1xx) whose body starts with `head` (for a 2xx
// with rules.max_success_body, its first max_success_body + 1 bytes; `complete`: that was all).
inline Attempt classify(const Poco::Net::HTTPResponse& response, const std::string& head,
                        Poco::Timestamp now, const AnswerRules& rules = {}, bool complete = true) {
  Attempt attempt;
  const int status = static_cast<int>(response.getStatus());
  attempt.http_status = status;
  attempt.content_type = printable(response.get("Content-Type", ""), kContentTypeBytes);
  if (status >= 200 && status < 300) {
    attempt.status = Status::kOk;
    if (rules.max_success_body > 0) {
      attempt.body.assign(head, 0, std::min(head.size(), rules.max_success_body));
      attempt.body_truncated = head.size() > rules.max_success_body || !complete;
    }
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
  const bool default_rule = rules.retry_statuses.empty();
  const bool retry = default_rule ? retryable_status(status)
                                  : status != 413 && listed(rules.retry_statuses, status);
  attempt.status = retry ? Status::kRetry : Status::kDrop;
  attempt.too_large = status == 413;
  const bool hint = default_rule ? honours_retry_after(status) : retry;
  if (hint && response.has("Retry-After")) {
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
                             bool& responded, const AnswerRules& rules = {}) {
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
  const bool keep_success = status() < 300 && rules.max_success_body > 0;
  const Body body =
      read_body(*in, keep_success ? std::min(rules.max_success_body, kMaxSuccessBody) + 1
                                  : kExcerptBytes + 1);
  answer.attempt = classify(response, body.head, now, rules, body.complete);
  answer.reusable = response.getKeepAlive() && body.complete;
  return answer;
}

}  // namespace relay::sdk::net
