#pragma once

// What an OtlpReceiver decoded, for people: per signal the requests and items, the resource once,
// the first log records, the spans as a tree per trace and each metric with its data points.
// lambda-emulator --otlp-receiver prints it after the run (as JSON with --json).

#include <Poco/JSON/Object.h>

#include <ostream>

#include "otlp_receiver.h"

namespace relay::emu {

struct OtlpReportOptions {
  size_t log_records = 5;  // the first N log records
  size_t traces = 3;       // the first N traces, each as a tree of its spans
};

Poco::JSON::Object::Ptr otlp_report_object(const OtlpReceiver& receiver,
                                           const OtlpReportOptions& options = {});
void print_otlp_report(std::ostream& out, const OtlpReceiver& receiver,
                       const OtlpReportOptions& options = {});

}  // namespace relay::emu
