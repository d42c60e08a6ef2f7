#pragma once

// OTLP/HTTP binary protobuf: the Export{Logs,Trace,Metrics}ServiceRequest wire bytes for the
// subset of the data model in otlp_model.h, written by hand (no protobuf runtime in the plugin).
//
// Output is what protobuf's own serializer writes for the same message: fields in field-number
// order, minimal varints, proto3 defaults (0, "", all-zero ids) omitted. Members of a oneof
// (AnyValue's value, NumberDataPoint's as_int/as_double, Metric's sum/gauge/histogram) and the
// presence fields HistogramDataPoint.sum/min/max are written when set, even when zero. A
// resource with no attributes, a scope with neither name nor version, a span status that is
// unset with no message and a log body of kind kEmpty are left out. A request with no items is
// still one ResourceX holding one ScopeX (the caller normally does not send it).

#include <string>

#include "otlp_model.h"

namespace relay::otlp {

// `out` is replaced (its capacity is reused).
void encode_protobuf(const LogsRequest& request, std::string& out);
void encode_protobuf(const TracesRequest& request, std::string& out);
void encode_protobuf(const MetricsRequest& request, std::string& out);

}  // namespace relay::otlp
