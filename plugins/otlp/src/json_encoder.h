#pragma once

// OTLP/HTTP JSON: the Export{Logs,Trace,Metrics}ServiceRequest in the OTLP specification's
// "JSON Protobuf Encoding" (the proto3 JSON mapping with OTLP's deviations): lowerCamelCase keys,
// trace and span ids as lowercase hex strings, enums as integers, 64-bit integers (timestamps,
// intValue, asInt, count, bucketCounts) as decimal strings, doubles as JSON numbers.
//
// NaN and ±infinity have no JSON number: they are written as the strings "NaN", "Infinity" and
// "-Infinity", as the proto3 JSON mapping says (protobuf's JSON parser and the Collector's OTLP
// receiver both read them back). Which fields are left out is the protobuf encoder's rule
// (protobuf_encoder.h): defaults omitted, oneof members and presence fields written when set.
// The model's strings are valid UTF-8; quotes, backslashes and control characters are escaped.

#include <string>

#include "otlp_model.h"

namespace relay::otlp {

// `out` is replaced (its capacity is reused).
void encode_json(const LogsRequest& request, std::string& out);
void encode_json(const TracesRequest& request, std::string& out);
void encode_json(const MetricsRequest& request, std::string& out);

}  // namespace relay::otlp
