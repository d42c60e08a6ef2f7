// Pure helpers of the http sink, in a header so unit tests can call them without a server:
// Retry-After parsing and the choice of CA bundle.
#pragma once

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <string_view>

namespace relay::http {

// Longer hints are cut to this: the host spools meanwhile, and a wrong header must not park the
// sink for hours. (The host applies the same cap.)
inline constexpr uint64_t kMaxRetryAfterMs = 60000;

// A Retry-After value (RFC 9110 10.2.3: delta-seconds or an HTTP-date) as milliseconds to wait
// from `now`, capped at cap_ms. 0 when the value is empty, malformed, or a date not in the future.
inline uint64_t parse_retry_after_ms(std::string_view value, Poco::Timestamp now,
                                     uint64_t cap_ms = kMaxRetryAfterMs) {
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  if (value.empty() || value.size() > 64) return 0;

  if (std::all_of(value.begin(), value.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    uint64_t seconds = 0;
    const auto [end, error] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (error == std::errc::result_out_of_range || seconds > cap_ms / 1000) return cap_ms;
    if (error != std::errc() || end != value.data() + value.size()) return 0;
    return std::min(seconds * 1000, cap_ms);
  }

  // Poco's parser is lenient (it reads "soon" as year 0), so the form is picked by shape:
  // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850 "Sunday, 06-Nov-94 ...",
  // asctime "Sun Nov  6 08:49:37 1994". Garbage parses to a past date: no hint.
  const std::string text(value);
  const size_t comma = text.find(',');
  const std::string& format = comma == 3                   ? Poco::DateTimeFormat::HTTP_FORMAT
                              : comma != std::string::npos ? Poco::DateTimeFormat::RFC850_FORMAT
                                                           : Poco::DateTimeFormat::ASCTIME_FORMAT;
  Poco::DateTime when;
  int zone = 0;
  try {
    if (!Poco::DateTimeParser::tryParse(format, text, when, zone)) return 0;
    when.makeUTC(zone);
  } catch (const Poco::Exception&) {
    return 0;  // out-of-range fields
  }
  const Poco::Timestamp at = when.timestamp();
  if (at <= now) return 0;
  return std::min(static_cast<uint64_t>((at - now) / 1000), cap_ms);
}

// Where the system's CA certificates usually are, first match wins: Amazon Linux (Lambda's own
// images), Debian/Ubuntu, then Alpine/BSD-style. The layer ships Debian's OpenSSL, whose built-in
// default (/usr/lib/ssl) does not exist on Amazon Linux, so relying on it fails every handshake.
inline constexpr std::string_view kCaBundleCandidates[] = {
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/ssl/cert.pem",
};

struct CaBundleChoice {
  enum class Source {
    kEnvironment,      // SSL_CERT_FILE is set: OpenSSL's defaults read it
    kDiscovered,       // file is the first candidate that exists
    kOpenSslDefaults,  // nothing found: OpenSSL's compiled-in defaults, likely empty
  };
  Source source = Source::kOpenSslDefaults;
  std::string file;
};

// The CA bundle to trust when ca_file is not configured. ssl_cert_file is the SSL_CERT_FILE
// environment variable (nullptr when unset); exists tells whether a path is a regular file.
inline CaBundleChoice choose_ca_bundle(
    const char* ssl_cert_file, std::span<const std::string_view> candidates,
    const std::function<bool(const std::string&)>& exists = [](const std::string& path) {
      std::error_code error;
      return std::filesystem::is_regular_file(path, error);
    }) {
  if (ssl_cert_file != nullptr && *ssl_cert_file != '\0') {
    return {CaBundleChoice::Source::kEnvironment, ssl_cert_file};
  }
  for (std::string_view candidate : candidates) {
    std::string path(candidate);
    if (exists(path)) return {CaBundleChoice::Source::kDiscovered, std::move(path)};
  }
  return {};
}

}  // namespace relay::http
