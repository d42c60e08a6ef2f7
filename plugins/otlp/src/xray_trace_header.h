#pragma once

#include <optional>
#include <string_view>

#include "otlp_model.h"

namespace relay::otlp {

// The X-Ray trace header Lambda puts in `tracing.value`:
// Root=1-<8 hex epoch>-<24 hex>;Parent=<16 hex>;Sampled=<0|1|?>[;Lineage=...;other=...].
struct XRayTraceHeader {
  TraceId trace_id{};   // the 8 and 24 hex digits of Root, as the OTel X-Ray propagator does
  SpanId parent_id{};   // all zero when Parent is absent
  bool sampled = true;  // Sampled=0 only clears it; absent or "?" (undecided) export
};

// nullopt when Root is missing or any known part is malformed (the caller counts it).
std::optional<XRayTraceHeader> parse_xray_trace_header(std::string_view value);

// 16 hex digits (a span id as Lambda writes tracing.spanId); nullopt otherwise or when zero.
std::optional<SpanId> parse_span_id(std::string_view hex);

}  // namespace relay::otlp
