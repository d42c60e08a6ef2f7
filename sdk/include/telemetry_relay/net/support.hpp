// telemetry_relay/net/support.hpp: pure helpers of the network toolkit, header-only so that unit
// tests call them without a server: Retry-After parsing, the choice of CA bundle, and what of a
// URI or of a receiver's text may reach a log line.
#pragma once

#include <Poco/DateTime.h>
#include <Poco/DateTimeFormat.h>
#include <Poco/DateTimeParser.h>
#include <Poco/Exception.h>
#include <Poco/NumberParser.h>
#include <Poco/Timestamp.h>

#include <algorithm>
#include <cctype>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace relay::sdk::net {

// A Retry-After value (RFC 9110 10.2.3: delta-seconds or an HTTP-date) as milliseconds to wait
// from `now`; 0 when the value is empty, malformed, or a date not in the future. Not capped: the
// host caps every hint (README, "Retry-After"), so a sink passes it through. Saturates at
// UINT64_MAX instead of wrapping.
inline uint64_t parse_retry_after_ms(std::string_view value, Poco::Timestamp now) {
  // Spaces and tabs only (RFC 9110's OWS): a CR or LF makes the value malformed.
  const auto is_space = [](char c) { return c == ' ' || c == '\t'; };
  while (!value.empty() && is_space(value.front())) value.remove_prefix(1);
  while (!value.empty() && is_space(value.back())) value.remove_suffix(1);
  if (value.empty() || value.size() > 64) return 0;
  const std::string text(value);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

  if (std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    Poco::UInt64 seconds = 0;
    if (!Poco::NumberParser::tryParseUnsigned64(text, seconds)) return kMax;  // too many digits
    return seconds > kMax / 1000 ? kMax : seconds * 1000;
  }

  // Poco's parser is lenient (it reads "soon" as year 0), so the form is picked by shape:
  // IMF-fixdate "Sun, 06 Nov 1994 08:49:37 GMT", obsolete RFC 850 "Sunday, 06-Nov-94 ...",
  // asctime "Sun Nov  6 08:49:37 1994". Garbage parses to a past date: no hint.
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
  return at <= now ? 0 : static_cast<uint64_t>((at - now) / 1000);
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

// The CA bundle to trust when no CA file is configured. ssl_cert_file is the SSL_CERT_FILE
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

// Printable ASCII only, at most `limit` bytes ("..." marks a cut): text from a receiver or from
// configuration that ends up in a log line must not forge or break lines.
inline std::string printable(std::string_view text, size_t limit) {
  std::string out;
  for (char c : text.substr(0, limit)) {
    const auto u = static_cast<unsigned char>(c);
    out += u >= 0x20 && u < 0x7f ? c : (c == '\n' || c == '\r' || c == '\t' ? ' ' : '?');
  }
  if (text.size() > limit) out += "...";
  return out;
}

// "host:port" of what follows "scheme://" (or of a string without one), for messages. Never the
// user info, path, query or fragment, which may carry credentials, even when the URI does not
// parse: a '/', '?' or '#' in a password ends the authority early, so the host is whatever
// follows the last '@'. A host is shown only when it looks like one, a port only when numeric.
inline std::string redacted_authority(std::string_view rest) {
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) rest.remove_prefix(at + 1);
  const std::string_view authority = rest.substr(0, rest.find_first_of("/?#"));
  // An IPv6 literal keeps its colons; otherwise the last colon starts the port.
  const size_t bracket = authority.rfind(']');
  const size_t colon = authority.rfind(':');
  const bool bracketed = !authority.empty() && authority.front() == '[';
  const bool has_port = colon != std::string_view::npos &&
                        (bracketed ? bracket != std::string_view::npos && colon > bracket
                                   : bracket == std::string_view::npos);
  const std::string_view host = authority.substr(0, has_port ? colon : authority.size());
  const std::string_view port = has_port ? authority.substr(colon + 1) : std::string_view();

  const auto is_digit = [](char c) { return c >= '0' && c <= '9'; };
  const bool ipv6 = host.size() > 2 && host.front() == '[' && host.back() == ']' &&
                    std::all_of(host.begin() + 1, host.end() - 1, [](char c) {
                      return std::isxdigit(static_cast<unsigned char>(c)) || c == ':' || c == '.';
                    });
  const bool named = !host.empty() && std::all_of(host.begin(), host.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '_';
  });
  std::string out = host.empty()                            ? "<no host>"
                    : host.size() <= 253 && (ipv6 || named) ? std::string(host)
                                                            : "<invalid host>";
  if (has_port) {
    const bool numeric =
        !port.empty() && port.size() <= 5 && std::all_of(port.begin(), port.end(), is_digit);
    out += numeric ? ":" + std::string(port) : ":<invalid port>";
  }
  return out;
}

// "scheme://host:port" of a URI for log lines (see redacted_authority), or nullopt without a
// "scheme://" prefix.
inline std::optional<std::string> redacted_uri(std::string_view uri) {
  const size_t separator = uri.find("://");
  if (separator == std::string_view::npos || separator == 0 || separator > 16) return std::nullopt;
  const std::string_view scheme = uri.substr(0, separator);
  const bool valid_scheme =
      std::isalpha(static_cast<unsigned char>(scheme.front())) &&
      std::all_of(scheme.begin(), scheme.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
      });
  if (!valid_scheme) return std::nullopt;
  return std::string(scheme) + "://" + redacted_authority(uri.substr(separator + 3));
}

}  // namespace relay::sdk::net
