#pragma once

// Renders a run's Summary as JSON or as the human table the CLI and the benchmark print.

#include <Poco/JSON/Object.h>

#include <ostream>
#include <string>
#include <vector>

#include "emulator.h"
#include "receiver.h"

namespace relay::emu {

// What a Receiver standing in for the sink's collector got, against what was generated.
struct ReceiverReport {
  size_t requests = 0;
  size_t events = 0;  // in requests answered 2xx
  DeliveryCheck check;
};

// The median of memory samples (e.g. Summary::frozen_rss_kb); 0 when there are none.
long median_kb(std::vector<long> samples);

ReceiverReport receiver_report(const Receiver& receiver, const Summary& summary);

Poco::JSON::Object::Ptr summary_object(const Summary& summary,
                                       const ReceiverReport* receiver = nullptr);
Poco::JSON::Object::Ptr percentiles_object(const Percentiles& percentiles);
std::string to_json(const Poco::JSON::Object::Ptr& object, unsigned indent = 2);

void print_summary(std::ostream& out, const Summary& summary,
                   const ReceiverReport* receiver = nullptr);

}  // namespace relay::emu
