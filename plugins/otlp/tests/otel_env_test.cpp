// parse_otel_list: the OTel exporter's "k1=v1,k2=v2" syntax of RELAY_OTLP_HEADERS and
// OTEL_RESOURCE_ATTRIBUTES.
#include "otel_env.h"

#include <gtest/gtest.h>

#include <stdexcept>
#include <string>

namespace {

using relay::otlp::parse_otel_list;
using Items = std::vector<std::pair<std::string, std::string>>;

TEST(OtelList, PairsInOrderTrimmedAndPercentDecoded) {
  EXPECT_EQ(parse_otel_list("", "X"), Items{});
  EXPECT_EQ(parse_otel_list("api-key=secret", "X"), (Items{{"api-key", "secret"}}));
  EXPECT_EQ(parse_otel_list(" a = 1 ,\tb=2\t, c=3", "X"),
            (Items{{"a", "1"}, {"b", "2"}, {"c", "3"}}));
  EXPECT_EQ(parse_otel_list("authorization=Basic%20dXNlcjpwYXNz,x%2Dk=a%2Cb%3Dc", "X"),
            (Items{{"authorization", "Basic dXNlcjpwYXNz"}, {"x-k", "a,b=c"}}));
  EXPECT_EQ(parse_otel_list("q=a+b", "X"), (Items{{"q", "a+b"}})) << "'+' is not a space";
  EXPECT_EQ(parse_otel_list("k=v=w", "X"), (Items{{"k", "v=w"}})) << "split at the first '='";
  EXPECT_EQ(parse_otel_list("k=", "X"), (Items{{"k", ""}})) << "an empty value is kept";
  EXPECT_EQ(parse_otel_list("service.name=caf%C3%A9", "X"), (Items{{"service.name", "café"}}));
  EXPECT_EQ(parse_otel_list("a=1,a=2", "X"), (Items{{"a", "1"}, {"a", "2"}}))
      << "duplicates kept, in order";
}

TEST(OtelList, EmptyItemsAreSkipped) {
  EXPECT_EQ(parse_otel_list(",a=1,, ,b=2,", "X"), (Items{{"a", "1"}, {"b", "2"}}));
  EXPECT_EQ(parse_otel_list(" , ,", "X"), Items{});
}

// The message names the variable and the item's position, never the text: values are secrets.
std::string refusal(std::string_view text) {
  try {
    parse_otel_list(text, "RELAY_OTLP_HEADERS");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "accepted";
}

TEST(OtelList, ABadItemIsNamedByPositionNeverByItsText) {
  EXPECT_EQ(refusal("a=1,S3CR3T"), "RELAY_OTLP_HEADERS: item 2 has no '=' (not shown)");
  EXPECT_EQ(refusal("a=1,,=S3CR3T"),
            "RELAY_OTLP_HEADERS: item 3 has an empty key (value not shown)");
  for (const char* bad : {"k=S3CR3T%", "k=S3CR3T%4", "k=S3CR3T%zz", "S3CR3T%g=v"}) {
    EXPECT_EQ(refusal(bad), "RELAY_OTLP_HEADERS: item 1 has a malformed percent-escape (not shown)")
        << bad;
  }
  for (const char* bad : {"k=S3CR3T%0D%0AX-Injected:%201", "k=S3CR3T%00", "k%0A=S3CR3T"}) {
    EXPECT_EQ(refusal(bad),
              "RELAY_OTLP_HEADERS: item 1 has a control character once decoded (not shown)")
        << bad;
  }
}

TEST(OtelList, BoundedInItemsAndBytes) {
  std::string items;
  for (int i = 0; i < 64; ++i) items += "k" + std::to_string(i) + "=v,";
  EXPECT_EQ(parse_otel_list(items, "X").size(), 64u);
  EXPECT_EQ(refusal(items + "one=more"), "RELAY_OTLP_HEADERS: more than 64 items");
  EXPECT_EQ(parse_otel_list(items + ",,,", "X").size(), 64u) << "empty items do not count";

  const std::string full = "k=" + std::string(8192 - 2, 'v');
  EXPECT_EQ(parse_otel_list(full, "X")[0].second.size(), 8190u);
  EXPECT_EQ(refusal(full + "v"), "RELAY_OTLP_HEADERS: longer than 8192 bytes");
}

}  // namespace
