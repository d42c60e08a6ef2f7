// Example sink: one line per batch with its event count and size, to stderr or to the file named
// by config key "path". Build it with relay_add_sink(); see CMakeLists.txt beside it.
#include <cstdio>
#include <stdexcept>
#include <string>
#include <telemetry_relay/sink.hpp>

namespace {

class StdoutSink final : public relay::sdk::Sink {
 public:
  // What the sink reads (RELAY_STDOUT_PATH): the host validates it and --check shows it.
  static constexpr relay_config_key kConfigKeys[] = {
      relay::sdk::key::string("path", "", "File to append the lines to; unset: stderr"),
  };

  StdoutSink(const relay::sdk::Host& host, const relay::sdk::Config& config) {
    const std::string path = config.text("path");
    if (!path.empty()) {
      file_ = std::fopen(path.c_str(), "a");
      if (file_ == nullptr) {
        throw std::invalid_argument("path=" + path + ": cannot open for appending");
      }
    }
    host.debug("writing batch summaries to " + (path.empty() ? std::string("stderr") : path));
  }
  ~StdoutSink() override {
    if (file_ != nullptr) {
      std::fclose(file_);
    }
  }

  relay::sdk::Status deliver(const relay::sdk::Batch& batch, relay::sdk::Deadline) override {
    std::FILE* out = file_ != nullptr ? file_ : stderr;
    if (std::fprintf(out, "batch: %zu events, %zu bytes\n", batch.size(), batch.json().size()) <
            0 ||
        std::fflush(out) != 0) {
      return fail(relay::sdk::Status::kRetry, "write failed");
    }
    return relay::sdk::Status::kOk;
  }

 private:
  std::FILE* file_ = nullptr;
};

}  // namespace

RELAY_SINK_PLUGIN(StdoutSink, RELAY_SINK_NAME, RELAY_SINK_VERSION);
