#include "batch_parser.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace relay {
namespace {

using ::testing::HasSubstr;

const std::filesystem::path kFixtureDir =
    std::filesystem::path(RELAY_SOURCE_DIR) / "tests" / "data" / "telemetry";

std::string read_fixture(const std::string& name) {
  std::ifstream in(kFixtureDir / name, std::ios::binary);
  EXPECT_TRUE(in) << "missing fixture " << name;
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

TelemetryPost parse_ok(std::string body) {
  ParseResult result = parse_batch(std::move(body));
  EXPECT_TRUE(result.batch.has_value()) << result.error.message;
  return result.batch ? std::move(*result.batch) : TelemetryPost{};
}

// What the parser must find, computed independently of simdjson by a naive byte scanner
// (correct for valid JSON, which every fixture is).
struct Expected {
  std::string json, type, time, record;
};

size_t skip_space(std::string_view s, size_t i) {
  while (i < s.size() && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) ++i;
  return i;
}

// Returns the end of the JSON value starting at i.
size_t value_end(std::string_view s, size_t i) {
  int depth = 0;
  bool in_string = false;
  for (; i < s.size(); ++i) {
    char c = s[i];
    if (in_string) {
      if (c == '\\') {
        ++i;
      } else if (c == '"') {
        in_string = false;
        if (depth == 0) return i + 1;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if (c == '}' || c == ']') {
      if (--depth == 0) return i + 1;
      if (depth < 0) return i;  // end of a scalar that closes its container
    } else if (depth == 0 && (c == ',' || c == ' ' || c == '\t' || c == '\r' || c == '\n')) {
      return i;
    }
  }
  return i;
}

std::vector<Expected> reference_split(std::string_view body) {
  std::vector<Expected> events;
  size_t i = skip_space(body, 0);
  EXPECT_EQ(body[i], '[');
  i = skip_space(body, i + 1);
  while (i < body.size() && body[i] != ']') {
    Expected event;
    size_t end = value_end(body, i);
    event.json = std::string(body.substr(i, end - i));
    std::string_view object = event.json;
    size_t j = skip_space(object, 1);
    while (object[j] != '}') {
      size_t key_end = value_end(object, j);
      std::string key(object.substr(j + 1, key_end - j - 2));
      j = skip_space(object, key_end);
      j = skip_space(object, j + 1);  // ':'
      size_t v_end = value_end(object, j);
      std::string value(object.substr(j, v_end - j));
      if (key == "type") event.type = value.substr(1, value.size() - 2);
      if (key == "time") event.time = value.substr(1, value.size() - 2);
      if (key == "record") event.record = value;
      j = skip_space(object, v_end);
      if (object[j] == ',') j = skip_space(object, j + 1);
    }
    events.push_back(event);
    i = skip_space(body, end);
    if (body[i] == ',') i = skip_space(body, i + 1);
  }
  return events;
}

bool inside(std::string_view view, const std::string& body) {
  return view.empty() ||
         (view.data() >= body.data() && view.data() + view.size() <= body.data() + body.size());
}

void expect_views_into_body(const TelemetryPost& batch) {
  ASSERT_TRUE(batch.body);
  const std::string& body = *batch.body;
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const TelemetryEvent& e = batch.events[i];
    EXPECT_TRUE(inside(e.json, body)) << "event " << i;
    EXPECT_TRUE(inside(e.type, body)) << "event " << i;
    EXPECT_TRUE(inside(e.time, body)) << "event " << i;
    EXPECT_TRUE(inside(e.record, body)) << "event " << i;
    // Sub-views lie within the event's own text.
    for (std::string_view part : {e.type, e.time, e.record}) {
      EXPECT_TRUE(part.empty() || (part.data() >= e.json.data() &&
                                   part.data() + part.size() <= e.json.data() + e.json.size()))
          << "event " << i;
    }
    EXPECT_EQ(e.json.front(), '{');
    EXPECT_EQ(e.json.back(), '}');
  }
  // Between consecutive events only whitespace and one comma: nothing lost, nothing shared.
  for (size_t i = 1; i < batch.events.size(); ++i) {
    const char* prev_end = batch.events[i - 1].json.data() + batch.events[i - 1].json.size();
    std::string_view gap(prev_end, size_t(batch.events[i].json.data() - prev_end));
    EXPECT_EQ(std::count(gap.begin(), gap.end(), ','), 1) << "before event " << i;
    EXPECT_EQ(gap.find_first_not_of(", \t\r\n"), std::string_view::npos) << "before event " << i;
  }
}

struct FixtureCase {
  std::string file;
  std::vector<std::string> types;  // in order; also gives the event count
};

std::ostream& operator<<(std::ostream& out, const FixtureCase& c) { return out << c.file; }

class FixtureTest : public ::testing::TestWithParam<FixtureCase> {};

TEST_P(FixtureTest, EventsAreExactViewsOfTheBody) {
  const std::string body = read_fixture(GetParam().file);
  TelemetryPost batch = parse_ok(body);
  ASSERT_EQ(batch.events.size(), GetParam().types.size());
  EXPECT_EQ(*batch.body, body);
  EXPECT_EQ(batch.byte_size(), body.size());
  expect_views_into_body(batch);

  std::vector<Expected> expected = reference_split(body);
  ASSERT_EQ(expected.size(), batch.events.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const TelemetryEvent& e = batch.events[i];
    EXPECT_EQ(e.type, GetParam().types[i]) << "event " << i;
    EXPECT_EQ(e.json, expected[i].json) << "event " << i;
    EXPECT_EQ(e.type, expected[i].type) << "event " << i;
    EXPECT_EQ(e.time, expected[i].time) << "event " << i;
    EXPECT_EQ(e.record, expected[i].record) << "event " << i;
  }
}

TEST_P(FixtureTest, JoinedEventsReparseToTheSameEvents) {
  TelemetryPost batch = parse_ok(read_fixture(GetParam().file));
  std::string joined = "[";
  for (size_t i = 0; i < batch.events.size(); ++i) {
    if (i) joined += ",";
    joined += batch.events[i].json;
  }
  joined += "]";
  TelemetryPost again = parse_ok(joined);
  ASSERT_EQ(again.events.size(), batch.events.size());
  for (size_t i = 0; i < batch.events.size(); ++i) {
    EXPECT_EQ(again.events[i].json, batch.events[i].json) << "event " << i;
    EXPECT_EQ(again.events[i].type, batch.events[i].type) << "event " << i;
    EXPECT_EQ(again.events[i].time, batch.events[i].time) << "event " << i;
    EXPECT_EQ(again.events[i].record, batch.events[i].record) << "event " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, FixtureTest,
    ::testing::Values(
        FixtureCase{"cold_invoke.json",
                    {"platform.initStart", "platform.telemetrySubscription", "function",
                     "platform.initRuntimeDone", "platform.extension", "platform.initReport",
                     "platform.start", "function", "platform.runtimeDone", "platform.report"}},
        FixtureCase{"json_function_records.json", std::vector<std::string>(8, "function")},
        FixtureCase{"text_records.json", std::vector<std::string>(8, "function")},
        FixtureCase{
            "unknown_types.json",
            {"platform.somethingNew", "platform.start", "platform.runtimeDone", "future.type.v2",
             "future.number", "future.bool", "future.null", "future.norecord", "only.type", ""}},
        FixtureCase{"extension_records.json",
                    {"extension", "extension", "platform.extension",
                     "platform.telemetrySubscription", "extension"}},
        FixtureCase{"logs_dropped.json",
                    {"platform.logsDropped", "platform.logsDropped", "function"}},
        FixtureCase{"pretty_printed.json", {"platform.report", "function"}},
        FixtureCase{"empty_array.json", {}}),
    [](const ::testing::TestParamInfo<FixtureCase>& param) {
      return param.param.file.substr(0, param.param.file.find('.'));
    });

TEST(BatchParserFixtures, EveryFixtureFileIsInTheTable) {
  // A fixture dropped into the directory without a table row would silently go untested.
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtureDir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().filename().string());
  }
  for (const std::string& file : files) {
    SCOPED_TRACE(file);
    TelemetryPost batch = parse_ok(read_fixture(file));
    expect_views_into_body(batch);
  }
  EXPECT_EQ(files.size(), 8u) << "add new fixtures to INSTANTIATE_TEST_SUITE_P";
}

TEST(BatchParser, StringRecordsKeepEscapesByteForByte) {
  TelemetryPost batch = parse_ok(read_fixture("text_records.json"));
  ASSERT_EQ(batch.events.size(), 8u);
  EXPECT_EQ(
      batch.events[1].record,
      R"("2024-05-14T09:12:05.320Z\t79b4f56e-95b1-4643-9700-2807f4e68189\tINFO\tHello from function handler")");
  EXPECT_THAT(std::string(batch.events[2].record),
              HasSubstr(R"(\t{\"errorType\":\"Error\",\"errorMessage\":\"boom\")"));
  EXPECT_THAT(std::string(batch.events[2].record), HasSubstr(R"(\rsecond line\rthird line")"));
  EXPECT_EQ(batch.events[3].record.substr(batch.events[3].record.size() - 3), R"(\n")");
  EXPECT_EQ(batch.events[4].record,
            R"("plain print: caf\u00e9 \ud83d\ude00 Grüße \\ back\\slash \"q\" \/ \b\f")");
  EXPECT_EQ(batch.events[5].record, R"("")");
  EXPECT_EQ(batch.events[7].record, R"("   leading and trailing spaces   ")");
}

TEST(BatchParser, ObjectRecordsKeepNumbersAndKeysByteForByte) {
  TelemetryPost batch = parse_ok(read_fixture("json_function_records.json"));
  ASSERT_EQ(batch.events.size(), 8u);
  std::string big(batch.events[4].record);
  EXPECT_THAT(big, HasSubstr(R"("big":123456789012345678901234567890,)"));
  EXPECT_THAT(big, HasSubstr(R"("u64max":18446744073709551615,)"));
  EXPECT_THAT(big, HasSubstr(R"("float":1.0E+400,)"));
  EXPECT_THAT(big, HasSubstr(R"("exact":0.1000000000000000055511151231257827,"zero":-0.0,)"));
  std::string text(batch.events[5].record);
  EXPECT_THAT(text, HasSubstr("Grüße, 世界 — ça va? 🚀"));
  EXPECT_THAT(text, HasSubstr(R"(caf\u00e9 \ud83d\ude80 \"quoted\" back\\slash \/)"));
  EXPECT_THAT(text, HasSubstr(R"("dup":1,"dup":2})"));
  EXPECT_EQ(batch.events[7].record, "{}");
}

TEST(BatchParser, AnyRecordValueAndAnyFieldOrderPassThrough) {
  TelemetryPost batch = parse_ok(read_fixture("unknown_types.json"));
  ASSERT_EQ(batch.events.size(), 10u);
  EXPECT_EQ(batch.events[1].time, "2025-01-29T10:00:00.001Z");
  EXPECT_EQ(batch.events[1].record, R"({"requestId":"r-1","version":"$LATEST"})");
  EXPECT_EQ(batch.events[2].time, "2025-01-29T10:00:00.002Z");
  EXPECT_EQ(batch.events[3].time, "2025-01-29T10:00:00");
  EXPECT_EQ(batch.events[3].record, R"(["an","array","record",{"k":1}])");
  EXPECT_EQ(batch.events[4].record, "-12.5e3");
  EXPECT_EQ(batch.events[5].record, "true");
  EXPECT_EQ(batch.events[6].record, "null");
  EXPECT_TRUE(batch.events[7].record.empty());
  EXPECT_TRUE(batch.events[8].time.empty());
  EXPECT_EQ(batch.events[9].json, "{}");
  EXPECT_TRUE(batch.events[9].type.empty());
}

TEST(BatchParser, ScalarRecordsAreCheckedButNotRangeLimited) {
  TelemetryPost batch =
      parse_ok(R"([{"record":123456789012345678901234567890},{"record":-1e999 },{"record":0.5E-7},)"
               R"({"record":false},{"record":-0}])");
  ASSERT_EQ(batch.events.size(), 5u);
  EXPECT_EQ(batch.events[0].record, "123456789012345678901234567890");
  EXPECT_EQ(batch.events[1].record, "-1e999");
  EXPECT_EQ(batch.events[2].record, "0.5E-7");
  EXPECT_EQ(batch.events[3].record, "false");
  EXPECT_EQ(batch.events[4].record, "-0");
  for (const char* bad : {R"([{"record":01}])", R"([{"record":1.}])", R"([{"record":-}])",
                          R"([{"record":1e+}])", R"([{"record":nul}])", R"([{"record":falsey}])"}) {
    const ParseResult result = parse_batch(bad);
    ASSERT_TRUE(result.batch.has_value()) << bad;
    EXPECT_TRUE(result.batch->events.empty()) << bad;
    EXPECT_EQ(result.invalid_events, 1u) << bad;
  }
}

TEST(BatchParser, WhitespaceAroundTokensIsTrimmed) {
  TelemetryPost batch = parse_ok(read_fixture("pretty_printed.json"));
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[0].type, "platform.report");
  EXPECT_EQ(batch.events[0].time, "2024-05-14T09:12:04.140Z");
  EXPECT_EQ(batch.events[0].record.front(), '{');
  EXPECT_EQ(batch.events[0].record.back(), '}');
  EXPECT_EQ(batch.events[1].record, R"("pretty\tprinted")");
  EXPECT_EQ(batch.events[1].json.back(), '}');
}

// The same platform events three ways: compact as Lambda writes them, pretty-printed with spaces
// around ':' and ',', and with every object's keys in another order ("record" before "type",
// requestId after nested objects that have a requestId of their own).
const char* const kCompactPlatform =
    R"([{"time":"t1","type":"platform.start","record":{"requestId":"id-1","version":"$LATEST"}},)"
    R"({"time":"t2","type":"function","record":{"requestId":"fn-not-platform","message":"m"}},)"
    R"({"time":"t3","type":"platform.runtimeDone","record":{"requestId":"id-1","status":"success","metrics":{"durationMs":1.5}}},)"
    R"({"time":"t4","type":"platform.report","record":{"requestId":"id-1","metrics":{"durationMs":2}}},)"
    R"({"time":"t5","type":"platform.logsDropped","record":{"droppedBytes":10,"droppedRecords":7,"reason":"r"}},)"
    R"({"time":"t6","type":"platform.initStart","record":{"requestId":"not-read"}}])";

const char* const kPrettyPlatform = R"([
  {
    "time" : "t1",
    "type" : "platform.start",
    "record" : {
      "requestId" : "id-1" ,
      "version" : "$LATEST"
    }
  } ,
  {"time" : "t2", "type" : "function", "record" : {"requestId" : "fn-not-platform", "message" : "m"}},
  {
    "time" : "t3", "type" : "platform.runtimeDone",
    "record" : { "requestId"	:	"id-1", "status" : "success", "metrics" : { "durationMs" : 1.5 } }
  },
  { "time" : "t4", "type" : "platform.report", "record" :
    { "requestId"
      :
      "id-1", "metrics" : { "durationMs" : 2 } } },
  { "time" : "t5", "type" : "platform.logsDropped",
    "record" : { "droppedBytes" : 10, "droppedRecords" : 7 , "reason" : "r" } },
  { "time" : "t6", "type" : "platform.initStart", "record" : { "requestId" : "not-read" } }
]
)";

const char* const kReorderedPlatform =
    R"([{"record":{"tracing":{"requestId":"nested"},"version":"$LATEST","requestId":"id-1"},"type":"platform.start","time":"t1"},)"
    R"({"record":{"message":"m","requestId":"fn-not-platform"},"time":"t2","type":"function"},)"
    R"({"time":"t3","record":{"metrics":{"durationMs":1.5,"requestId":"nested"},"status":"success","requestId":"id-1"},"type":"platform.runtimeDone"},)"
    R"({"record" : {"spans":[{"requestId":"nested"}],"metrics":{"durationMs":2},"requestId" : "id-1"},"type" : "platform.report","time":"t4"},)"
    R"({"type":"platform.logsDropped","record":{"reason":"droppedRecords: 99","nested":{"droppedRecords":99},"droppedRecords":7,"droppedBytes":10},"time":"t5"},)"
    R"({"record":{"requestId":"not-read"},"type":"platform.initStart","time":"t6"}])";

std::vector<std::tuple<PlatformType, std::string, uint64_t>> platform_of(const TelemetryPost& b) {
  std::vector<std::tuple<PlatformType, std::string, uint64_t>> out;
  for (const PlatformFields& f : b.platform) {
    out.emplace_back(f.type, std::string(f.request_id), f.dropped_records);
  }
  return out;
}

TEST(BatchParser, PlatformFieldsAreFoundWhateverTheSpacingAndKeyOrder) {
  const std::vector<std::tuple<PlatformType, std::string, uint64_t>> expected = {
      {PlatformType::kStart, "id-1", 0},
      {PlatformType::kRuntimeDone, "id-1", 0},
      {PlatformType::kReport, "id-1", 0},
      {PlatformType::kLogsDropped, "", 7},
  };
  for (const char* body : {kCompactPlatform, kPrettyPlatform, kReorderedPlatform}) {
    TelemetryPost batch = parse_ok(body);
    ASSERT_EQ(batch.events.size(), 6u) << body;
    EXPECT_EQ(platform_of(batch), expected) << body;
    for (size_t i = 0; i < batch.events.size(); ++i) {
      EXPECT_EQ(batch.events[i].time, "t" + std::to_string(i + 1)) << body;
      // Records end exactly at their closing brace, whatever follows them.
      EXPECT_EQ(batch.events[i].record.front(), '{') << body;
      EXPECT_EQ(batch.events[i].record.back(), '}') << body;
      EXPECT_EQ(batch.events[i].json.front(), '{') << body;
      EXPECT_EQ(batch.events[i].json.back(), '}') << body;
    }
  }
  // A record read in place keeps its exact bytes, as a skipped one does.
  TelemetryPost pretty = parse_ok(kPrettyPlatform);
  EXPECT_EQ(pretty.events[0].record,
            "{\n      \"requestId\" : \"id-1\" ,\n      \"version\" : "
            "\"$LATEST\"\n    }");
  EXPECT_EQ(pretty.events[3].record,
            "{ \"requestId\"\n      :\n      \"id-1\", \"metrics\" : { \"durationMs\" : 2 } }");
  TelemetryPost compact = parse_ok(kCompactPlatform);
  EXPECT_EQ(compact.events[2].record,
            R"({"requestId":"id-1","status":"success","metrics":{"durationMs":1.5}})");
  EXPECT_EQ(
      compact.events[4].json,
      R"({"time":"t5","type":"platform.logsDropped","record":{"droppedBytes":10,"droppedRecords":7,"reason":"r"}})");
}

TEST(BatchParser, PlatformFieldsToleratePartialAndOddRecords) {
  TelemetryPost batch =
      parse_ok(R"([{"type":"platform.report","record":{"status":"timeout"}},)"  // no requestId
               R"({"type":"platform.report","record":{"requestId":42}},)"       // not a string
               R"({"type":"platform.report","record":"a string record"},)"
               R"({"type":"platform.start","record":{"requestId":"esc\"aped\u0041"}},)"
               R"({"type":"platform.logsDropped","record":{"droppedRecords":-3}},)"
               R"({"type":"platform.logsDropped","record":{"droppedRecords":"12"}},)"
               R"({"type":"platform.logsDropped","record":{"droppedRecords":1.5e3}},)"
               R"({"type":"platform.logsDropped","record":{"droppedRecords":1e30}},)"
               R"({"record":{"droppedRecords":5},"type":"platform.logsDropped"},)"
               R"({"record":"late string","type":"platform.report"},)"
               R"({"type":"platform.startX","record":{"requestId":"x"}},)"
               R"({"type":"platform.","record":{"requestId":"x"}},)"
               R"({"type":"platform.report"}])");
  const std::vector<std::tuple<PlatformType, std::string, uint64_t>> expected = {
      {PlatformType::kReport, "", 0},
      {PlatformType::kReport, "", 0},
      {PlatformType::kReport, "", 0},
      {PlatformType::kStart, R"(esc\"aped\u0041)", 0},  // as received, like `type`
      {PlatformType::kLogsDropped, "", 0},
      {PlatformType::kLogsDropped, "", 0},
      {PlatformType::kLogsDropped, "", 1500},
      {PlatformType::kLogsDropped, "", UINT64_MAX},
      {PlatformType::kLogsDropped, "", 5},
      {PlatformType::kReport, "", 0},
      {PlatformType::kReport, "", 0},  // the last event, without a record
  };
  EXPECT_EQ(platform_of(batch), expected);
  EXPECT_EQ(batch.events[2].record, R"("a string record")");
  EXPECT_EQ(batch.events[3].record, R"({"requestId":"esc\"aped\u0041"})");
}

TEST(BatchParser, FunctionAndExtensionEventsGetNoPlatformFields) {
  TelemetryPost batch = parse_ok(read_fixture("json_function_records.json"));
  EXPECT_TRUE(batch.platform.empty());
  TelemetryPost cold = parse_ok(read_fixture("cold_invoke.json"));
  size_t wanted = 0;
  for (const TelemetryEvent& event : cold.events) {
    if (event.type == "platform.start" || event.type == "platform.runtimeDone" ||
        event.type == "platform.report" || event.type == "platform.logsDropped") {
      ++wanted;
    }
  }
  EXPECT_GT(wanted, 0u);
  EXPECT_EQ(cold.platform.size(), wanted);
}

// A platform record that is not valid JSON drops its event, fields and all; a truncated body
// is still refused whole.
TEST(BatchParser, AnInvalidPlatformRecordDropsItsEvent) {
  ParseResult result = parse_batch(
      R"([{"type":"platform.start","record":{"version":1,"requestId":}},)"
      R"({"type":"platform.start","record":{"requestId":"ok"}},)"
      R"({"type":"platform.logsDropped","record":{"droppedBytes":1,"droppedRecords"}}])");
  ASSERT_TRUE(result.batch.has_value()) << result.error.message;
  EXPECT_EQ(result.invalid_events, 2u);
  EXPECT_THAT(result.error.message, HasSubstr("event 0: unexpected character at byte 60"));
  ASSERT_EQ(result.batch->events.size(), 1u);
  ASSERT_EQ(result.batch->platform.size(), 1u);
  EXPECT_EQ(result.batch->platform[0].request_id, "ok");
  ParseResult truncated = parse_batch(R"([{"type":"platform.report","record":{"requestId":"x")");
  EXPECT_FALSE(truncated.batch.has_value());
  EXPECT_THAT(truncated.error.message, HasSubstr("truncated"));
}

TEST(BatchParser, RecordStringFieldReadsTheTopLevelFieldOnly) {
  TelemetryPost batch = parse_ok(
      R"([{"type":"extension","record":{ "nested" : {"message":"no"} , "message" : "telemetry-relay x" }},)"
      R"({"type":"extension","record":"telemetry-relay plain"},)"
      R"({"type":"extension","record":{"message":{"not":"a string"}}},)"
      R"({"type":"extension","record":{"level":"INFO"}}])");
  ASSERT_EQ(batch.events.size(), 4u);
  EXPECT_EQ(record_string_field(batch, batch.events[0].record, "message"), "telemetry-relay x");
  EXPECT_EQ(record_string_field(batch, batch.events[1].record, "message"), std::nullopt);
  EXPECT_EQ(record_string_field(batch, batch.events[2].record, "message"), std::nullopt);
  EXPECT_EQ(record_string_field(batch, batch.events[3].record, "message"), std::nullopt);
  // A view that is not into the batch's body is refused rather than read past its end.
  const std::string elsewhere = R"({"message":"telemetry-relay x"})";
  EXPECT_EQ(record_string_field(batch, elsewhere, "message"), std::nullopt);
}

TEST(BatchParser, ShortBodiesStayValidAfterTheMove) {
  // Short strings live inside std::string itself; the views must still point at the shared copy.
  TelemetryPost batch = parse_ok(R"([{}])");
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].json.data(), batch.body->data() + 1);
  EXPECT_TRUE(parse_ok("[]").events.empty());
}

TEST(BatchParser, ViewsOutliveTheParseCall) {
  std::vector<TelemetryPost> kept;
  for (int i = 0; i < 3; ++i) {
    kept.push_back(parse_ok(R"([{"type":"function","time":"t)" + std::to_string(i) +
                            R"(","record":"line )" + std::to_string(i) + R"("}])"));
  }
  // Built with append: GCC 12 at -O3 misreports "literal" + std::string (-Wrestrict, PR105329).
  for (int i = 0; i < 3; ++i) {
    std::string time = "t";
    time.append(std::to_string(i));
    std::string record = "\"line ";
    record.append(std::to_string(i)).append("\"");
    EXPECT_EQ(kept[size_t(i)].events[0].time, time);
    EXPECT_EQ(kept[size_t(i)].events[0].record, record);
  }
}

struct MalformedCase {
  std::string name;
  std::string body;
  std::string message;  // a substring of the expected error
};

std::ostream& operator<<(std::ostream& out, const MalformedCase& c) { return out << c.name; }

// Bodies that are not a JSON array, or not a whole one: nothing in them can be told apart.
class MalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(MalformedTest, IsRejectedNamingTheProblem) {
  ParseResult result = parse_batch(GetParam().body);
  EXPECT_FALSE(result.batch.has_value());
  EXPECT_THAT(result.error.message, HasSubstr(GetParam().message));
}

INSTANTIATE_TEST_SUITE_P(
    Cases, MalformedTest,
    ::testing::Values(
        MalformedCase{"Empty", "", "empty body"}, MalformedCase{"Whitespace", " \r\n\t", "empty"},
        MalformedCase{"Object", "{}", "not a JSON array (starts with '{')"},
        MalformedCase{"String", R"("text")", "not a JSON array"},
        MalformedCase{"Number", "42", "not a JSON array"},
        MalformedCase{"Truncated", R"([{"type":"a"})", "truncated"},
        MalformedCase{"TruncatedInThirdEvent", R"([{"type":"a"},{"type":"b"},{"type":)",
                      "truncated: body ends inside event 2"},
        MalformedCase{"TruncatedInString", R"([{"type":"a)", "inside a string in event 0"},
        MalformedCase{"OnlyOpenBracket", "[", "truncated"},
        MalformedCase{"TrailingWord", R"([{"type":"a"}] trailing)",
                      "trailing content after the array at byte 15"},
        MalformedCase{"TrailingArray", R"([{"type":"a"}][])",
                      "trailing content after the array at byte 14"},
        MalformedCase{"TrailingBracket", R"([{"type":"a"}]])", "trailing content"},
        MalformedCase{"DeepTruncated", "[" + std::string(100000, '['), "truncated"}),
    [](const ::testing::TestParamInfo<MalformedCase>& param) { return param.param.name; });

// An array whose element `bad` is not a valid event, between two good ones: only it is dropped,
// and what remains is valid JSON (the fuzz target checks that against an independent validator).
struct InvalidEventCase {
  std::string name;
  std::string bad;
  std::string message;  // a substring of the reason given for it
};

std::ostream& operator<<(std::ostream& out, const InvalidEventCase& c) { return out << c.name; }

class InvalidEventTest : public ::testing::TestWithParam<InvalidEventCase> {};

constexpr std::string_view kGoodBefore = R"({"type":"function","record":"before"})";
constexpr std::string_view kGoodAfter = R"({"type":"platform.start","record":{"requestId":"r"}})";

TEST_P(InvalidEventTest, IsDroppedAndTheOthersKept) {
  const std::string body = "[" + std::string(kGoodBefore) + ",\n" + GetParam().bad + " ,\n" +
                           std::string(kGoodAfter) + "]";
  ParseResult result = parse_batch(body);
  ASSERT_TRUE(result.batch.has_value()) << result.error.message;
  EXPECT_EQ(result.invalid_events, 1u);
  EXPECT_THAT(result.error.message, HasSubstr("event 1: " + GetParam().message));
  ASSERT_EQ(result.batch->events.size(), 2u);
  EXPECT_EQ(result.batch->events[0].json, kGoodBefore);
  EXPECT_EQ(result.batch->events[1].json, kGoodAfter);
  ASSERT_EQ(result.batch->platform.size(), 1u);
  EXPECT_EQ(result.batch->platform[0].request_id, "r");
  // The events joined are a delivery: it must parse whole, with nothing dropped.
  const ParseResult again =
      parse_batch("[" + std::string(kGoodBefore) + "," + std::string(kGoodAfter) + "]");
  ASSERT_TRUE(again.batch.has_value());
  EXPECT_EQ(again.invalid_events, 0u);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, InvalidEventTest,
    ::testing::Values(
        InvalidEventCase{"NumberElement", "1", "not a JSON object"},
        InvalidEventCase{"StringElement", R"("x")", "not a JSON object"},
        InvalidEventCase{"MismatchedBracketsInRecord", R"({"record":{"a":[1,2}})", "expected"},
        InvalidEventCase{"MismatchedBracketInRecord", R"({"record":[1})", "expected"},
        InvalidEventCase{"MissingCommaInRecord", R"({"record":{"a":1 "b":2}})", "expected"},
        InvalidEventCase{"MissingCommaBetweenFields", R"({"type":"a" "time":"b"})", "expected"},
        InvalidEventCase{"MissingValue", R"({"type":})", "unexpected character"},
        InvalidEventCase{"BareWord", R"({"record":{"level":INFO}})", "unexpected character"},
        InvalidEventCase{"TrailingCommaInRecord", R"({"record":{"a":1,}})",
                         "expected a string key"},
        InvalidEventCase{"TrailingCommaInArray", R"({"record":[1,2,]})", "unexpected character"},
        InvalidEventCase{"LeadingZero", R"({"record":{"n":007}})", "invalid number"},
        InvalidEventCase{"NaN", R"({"record":NaN})", "unexpected character"},
        InvalidEventCase{"Infinity", R"({"record":-Infinity})", "invalid number"},
        InvalidEventCase{"SingleQuotes", R"({"record":'x'})", "unexpected character"},
        InvalidEventCase{"BadLiteralRecord", R"({"record":tru})", "unexpected character"},
        InvalidEventCase{"BadNumberRecord", R"({"record":1x})", "expected"},
        InvalidEventCase{"ControlCharacter", "{\"record\":\"a\tb\"}", "control character"},
        InvalidEventCase{"BadEscape", R"({"record":"a\x"})", "invalid escape"},
        InvalidEventCase{"LoneSurrogate", R"({"record":"\ud800"})", "lone UTF-16 surrogate"},
        InvalidEventCase{"InvalidUtf8", "{\"type\":\"\xff\xfe\"}", "invalid UTF-8"},
        InvalidEventCase{"TypeNotString", R"({"type":1})", R"("type" is not a string)"},
        InvalidEventCase{"TimeNotString", R"({"time":{}})", R"("time" is not a string)"},
        InvalidEventCase{"StrayCloser", R"({"a":1}})", "content after the value"},
        InvalidEventCase{"DeepUnbalanced", "{\"record\":" + std::string(1000, '[') + "}",
                         "unexpected character"},
        InvalidEventCase{"EmptyElement", "", "empty element"}),
    [](const ::testing::TestParamInfo<InvalidEventCase>& param) { return param.param.name; });

TEST(BatchParser, ArraySeparatorsAreCheckedToo) {
  ParseResult comma = parse_batch(R"([{"type":"a"},])");
  ASSERT_TRUE(comma.batch.has_value());
  EXPECT_EQ(comma.batch->events.size(), 1u);
  EXPECT_EQ(comma.invalid_events, 1u);
  EXPECT_THAT(comma.error.message, HasSubstr("event 1: trailing comma at byte 0"));
  // Two events without a comma between them are one invalid element.
  ParseResult missing = parse_batch(R"([{"type":"a"} {"type":"b"},{"type":"c"}])");
  ASSERT_TRUE(missing.batch.has_value());
  ASSERT_EQ(missing.batch->events.size(), 1u);
  EXPECT_EQ(missing.batch->events[0].type, "c");
  EXPECT_EQ(missing.invalid_events, 1u);
  // A ']' without its '[' ends the array, so an event missing its '}' costs only itself.
  ParseResult unclosed = parse_batch(R"([{"type":"c"},{"type":"a"])");
  ASSERT_TRUE(unclosed.batch.has_value());
  ASSERT_EQ(unclosed.batch->events.size(), 1u);
  EXPECT_EQ(unclosed.invalid_events, 1u);
}

// The fast path's validator refuses numbers beyond double and nesting beyond 1024; the slow path
// must then keep every event, since all are valid JSON.
TEST(BatchParser, ValidBodiesBeyondTheFastPathsLimitsLoseNothing) {
  ParseResult result = parse_batch(R"([{"type":"a","record":1e999},{"type":"b","record":)" +
                                   std::string(2000, '[') + std::string(2000, ']') + "}]");
  ASSERT_TRUE(result.batch.has_value()) << result.error.message;
  EXPECT_EQ(result.invalid_events, 0u);
  EXPECT_EQ(result.batch->events.size(), 2u);
  EXPECT_EQ(result.error.message, "");
}

TEST(BatchParser, DeeplyNestedRecordPassesThroughWithoutRecursion) {
  // Records are skipped, never walked recursively, so depth costs no stack.
  const std::string record = std::string(100000, '[') + std::string(100000, ']');
  TelemetryPost batch = parse_ok(R"([{"type":"function","record":)" + record + "}]");
  ASSERT_EQ(batch.events.size(), 1u);
  EXPECT_EQ(batch.events[0].record, record);
}

std::string generated_event(size_t i) {
  std::string n = std::to_string(i);
  if (i % 3 == 0) {
    return R"({"time":"2024-05-14T09:12:04.)" + n + R"(Z","type":"function","record":"line )" + n +
           R"(\tINFO\tsome text to make the record about two hundred bytes long, with a tab \t and \"quotes\" and more words to pad"})";
  }
  if (i % 3 == 1) {
    return R"({"time":"2024-05-14T09:12:04.)" + n +
           R"(Z","type":"platform.report","record":{"requestId":"79b4f56e-95b1-4643-9700-)" + n +
           R"(","status":"success","metrics":{"durationMs":29.87,"billedDurationMs":720,"memorySizeMB":256}}})";
  }
  return R"({"time":"2024-05-14T09:12:04.)" + n +
         R"(Z","type":"function","record":{"timestamp":"2024-05-14T09:12:05Z","level":"INFO","message":{"n":)" +
         n + R"(,"items":[1,2,3],"nested":{"a":null}}}})";
}

TEST(BatchParser, HugeBodyParsesCompletely) {
  constexpr size_t kEvents = 20000;
  std::string body = "[";
  for (size_t i = 0; i < kEvents; ++i) {
    if (i) body += ",\n";
    body += generated_event(i);
  }
  while (body.size() < 5 * 1024 * 1024) body += ' ';  // 5 MB, padded with legal whitespace
  body += "]";
  const std::string copy = body;
  TelemetryPost batch = parse_ok(std::move(body));
  ASSERT_EQ(batch.events.size(), kEvents);
  EXPECT_EQ(*batch.body, copy);
  for (size_t i = 0; i < kEvents; ++i) {
    const std::string expected = generated_event(i);
    ASSERT_EQ(batch.events[i].json, expected) << "event " << i;
    ASSERT_EQ(batch.events[i].time, "2024-05-14T09:12:04." + std::to_string(i) + "Z");
  }
  EXPECT_EQ(batch.events[1].type, "platform.report");
  EXPECT_EQ(batch.events.back().record.back(), '}');
}

TEST(BatchParser, ParsesConcurrentlyOnSeveralThreads) {
  const std::string body = read_fixture("cold_invoke.json");
  const std::string big_body = read_fixture("json_function_records.json");
  std::vector<std::thread> threads;
  std::vector<int> failures(4, 0);
  for (size_t t = 0; t < failures.size(); ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        ParseResult a = parse_batch(t % 2 ? body : big_body);
        ParseResult b = parse_batch(t % 2 ? "[1]" : "[{},{\"a\":01}]");
        if (!a.batch || a.batch->events.size() != (t % 2 ? 10u : 8u) || !b.batch ||
            b.invalid_events != 1) {
          ++failures[t];
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_THAT(failures, ::testing::Each(0));
}

}  // namespace
}  // namespace relay
