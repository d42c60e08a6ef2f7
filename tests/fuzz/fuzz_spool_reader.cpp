// libFuzzer target: the spool reader, on files an earlier process (or anyone with access to
// /tmp) left behind. Input: the bytes of one spool file. It is indexed by a new Spool (header
// checks), read back (checksum, bounds, offset table), then removed; whatever the bytes, the
// spool never crashes, never reads past what it was given, every event view it hands back lies
// inside the delivery's JSON, and its counters stay consistent.
#include <Poco/Logger.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "spool.h"

namespace {

namespace fs = std::filesystem;

const std::string& spool_dir() {
  static const std::string dir =
      (fs::temp_directory_path() / ("relay-fuzz-spool-" + std::to_string(::getpid())) / "sink")
          .string();
  return dir;
}

// Tiny limits so the size checks are reached with small inputs too.
constexpr uint64_t kMaxBytes = 1u << 16;

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  Poco::Logger::root().setLevel(Poco::Message::PRIO_FATAL);  // one warning per bad input
  Poco::Logger::get("relay.spool").setLevel(Poco::Message::PRIO_FATAL);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& dir = spool_dir();
  fs::remove_all(fs::path(dir).parent_path());
  fs::create_directories(dir);
  {
    std::ofstream out(fs::path(dir) / "00000000000000000007.batch", std::ios::binary);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  relay::Spool spool(relay::SpoolLimits{dir, kMaxBytes, 16});
  const uint64_t files = spool.stats().files;
  const uint64_t quarantined = spool.stats().quarantined;
  if (files + quarantined != 1) __builtin_trap();  // indexed, or moved aside: never both
  if (files == 1) {
    const auto entry = spool.oldest();
    if (entry) {
      if (entry->seq != 7 || entry->batch_id.size() > relay::Spool::kMaxBatchIdBytes ||
          entry->json.size() > size || entry->events != entry->offsets.size() ||
          entry->events > entry->json.size()) {
        __builtin_trap();
      }
      // Every view inside the JSON, events in order without overlap, fields inside their event.
      const char* begin = entry->json.data();
      const char* end = begin + entry->json.size();
      const char* previous_end = begin;
      for (const relay::SpooledEvent& offsets : entry->offsets) {
        const relay::TelemetryEvent e = offsets.in(entry->json);
        const char* json_end = e.json.data() + e.json.size();
        if (e.json.empty() || e.json.data() < previous_end || json_end > end) __builtin_trap();
        for (const std::string_view field : {e.type, e.time, e.record}) {
          if (!field.empty() &&
              (field.data() < e.json.data() || field.data() + field.size() > json_end)) {
            __builtin_trap();
          }
        }
        previous_end = json_end;
      }
      spool.remove(entry->seq);
    }
    if (spool.stats().files != 0 || spool.stats().events != 0) __builtin_trap();
  }
  // The next write continues the numbering after the file found.
  uint64_t seq = 0;
  const std::string json = "[1]";
  const relay::TelemetryEvent event{std::string_view(json).substr(1, 1), {}, {}, {}};
  if (spool.put("id", json, {&event, 1}, nullptr, &seq) && seq != 8) __builtin_trap();
  return 0;
}
