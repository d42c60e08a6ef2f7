// A minimal external extension for the emulator's own tests: registers, subscribes, appends
// every telemetry POST body as one line to FAKE_EXT_TELEMETRY_FILE, calls next, and exits 0 on
// SHUTDOWN. Tests steer it with FAKE_EXT_* variables and read what it saw from its stderr,
// where every line starts with "fake: ".
//
//   FAKE_EXT_MODE       normal | probe | never_register | init_error | exit_error |
//                       crash_on_invoke=N | hang_on_shutdown | exit_code=N
//   FAKE_EXT_TYPES      subscription types, default "platform,function"; "none": no subscribe
//   FAKE_EXT_BUFFERING  buffering JSON, default {"maxItems":1000,"maxBytes":262144,"timeoutMs":25}
//   FAKE_EXT_EVENTS     register events, default "INVOKE,SHUTDOWN"; alternatives separated by
//                       ';' are tried in order until one is accepted, e.g.
//                       "INVOKE,SHUTDOWN;SHUTDOWN"
//   FAKE_EXT_SCHEMA     subscription schemaVersions tried in order until one is accepted,
//                       default "2022-12-13"; e.g. "2022-12-13,2025-01-29"
//   FAKE_EXT_NAME       register under this name instead of basename(argv[0])
//   FAKE_EXT_FAIL_POSTS answer the first N telemetry POSTs with 500
//   FAKE_EXT_DRAIN_MS   time to keep receiving after SHUTDOWN, default 300
//   FAKE_EXT_ECHO_ENV   comma-separated variable names to print as "fake: env NAME=value"

#include <Poco/JSON/Object.h>
#include <Poco/JSON/Parser.h>
#include <Poco/Net/HTTPClientSession.h>
#include <Poco/Net/HTTPRequest.h>
#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPResponse.h>
#include <Poco/Net/HTTPServer.h>
#include <Poco/Net/HTTPServerParams.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>
#include <Poco/Net/ServerSocket.h>
#include <Poco/StreamCopier.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

void say(const std::string& line) {
  std::cerr << "fake: " << line << std::endl;  // flushed at once: tests read it live
}

struct Reply {
  int status = -1;
  std::string body;
  std::string id;  // Lambda-Extension-Identifier
};

Reply call(const std::string& method, const std::string& path,
           const std::map<std::string, std::string>& headers, const std::string& body) {
  static const std::string api = env_or("AWS_LAMBDA_RUNTIME_API", "127.0.0.1:9001");
  const auto colon = api.rfind(':');
  Reply reply;
  try {
    Poco::Net::HTTPClientSession session(
        api.substr(0, colon), static_cast<Poco::UInt16>(std::stoi(api.substr(colon + 1))));
    // `next` may block for as long as the environment lives.
    session.setTimeout(Poco::Timespan(3600, 0));
    Poco::Net::HTTPRequest request(method, path, Poco::Net::HTTPMessage::HTTP_1_1);
    for (const auto& [name, value] : headers) request.set(name, value);
    request.setContentLength(static_cast<std::streamsize>(body.size()));
    session.sendRequest(request) << body;
    Poco::Net::HTTPResponse response;
    Poco::StreamCopier::copyToString(session.receiveResponse(response), reply.body);
    reply.status = static_cast<int>(response.getStatus());
    reply.id = response.get("Lambda-Extension-Identifier", "");
  } catch (const Poco::Exception& e) {
    reply.body = e.displayText();
  }
  while (!reply.body.empty() && reply.body.back() == '\n') reply.body.pop_back();
  return reply;
}

void probe(const std::string& label, const Reply& reply) {
  say("probe " + label + " " + std::to_string(reply.status) + " " + reply.body);
}

// Records telemetry; answers 400 to a body that is not a JSON array, like a strict listener.
class Listener : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  Listener() : fail_posts_(std::stoi(env_or("FAKE_EXT_FAIL_POSTS", "0"))) {}

  Poco::Net::HTTPRequestHandler* createRequestHandler(
      const Poco::Net::HTTPServerRequest&) override {
    return new Handler(*this);
  }

 private:
  class Handler : public Poco::Net::HTTPRequestHandler {
   public:
    explicit Handler(Listener& owner) : owner_(owner) {}
    void handleRequest(Poco::Net::HTTPServerRequest& request,
                       Poco::Net::HTTPServerResponse& response) override {
      std::string body;
      Poco::StreamCopier::copyToString(request.stream(), body);
      response.setStatus(owner_.record(body) ? Poco::Net::HTTPResponse::HTTP_OK
                                             : Poco::Net::HTTPResponse::HTTP_BAD_REQUEST);
      response.setContentLength(0);
      response.send();
    }

   private:
    Listener& owner_;
  };

  bool record(const std::string& body) {
    if (body.size() < 2 || body.front() != '[' || body.back() != ']') return false;
    if (fail_posts_.fetch_sub(1) > 0) {
      say("failing a POST on purpose");
      return false;
    }
    std::lock_guard lock(mu_);
    static const std::string path = env_or("FAKE_EXT_TELEMETRY_FILE", "");
    if (!path.empty()) std::ofstream(path, std::ios::app) << body << "\n";
    static const std::string report = R"("type":"platform.report","record":{"requestId":")";
    for (auto at = body.find(report); at != std::string::npos; at = body.find(report, at + 1)) {
      say("got platform.report " + body.substr(at + report.size(), 36));
    }
    return true;
  }

  std::atomic<int> fail_posts_;
  std::mutex mu_;
};

// Non-empty items of a `separator`-separated list.
std::vector<std::string> split(const std::string& list, char separator) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= list.size()) {
    const size_t end = std::min(list.find(separator, start), list.size());
    if (end > start) items.push_back(list.substr(start, end - start));
    start = end + 1;
  }
  return items;
}

std::string json_array(const std::string& csv) {
  std::string out = "[";
  for (const auto& item : split(csv, ',')) out += (out.size() > 1 ? ",\"" : "\"") + item + "\"";
  return out + "]";
}

std::string subscription(const std::string& types, const std::string& buffering,
                         const std::string& uri, const std::string& schema = "2022-12-13") {
  return R"({"schemaVersion":")" + schema + R"(","types":)" + json_array(types) +
         R"(,"buffering":)" + buffering + R"(,"destination":{"protocol":"HTTP","URI":")" + uri +
         R"("}})";
}

}  // namespace

int main(int, char** argv) {
  const std::string self = argv[0];
  const std::string name = env_or("FAKE_EXT_NAME", self.substr(self.rfind('/') + 1));
  const std::string mode = env_or("FAKE_EXT_MODE", "normal");
  const bool probing = mode == "probe";
  say("started as " + name + " mode " + mode);
  {
    const std::string echo = env_or("FAKE_EXT_ECHO_ENV", "");
    size_t start = 0;
    while (start < echo.size()) {
      const size_t comma = std::min(echo.find(',', start), echo.size());
      const std::string var = echo.substr(start, comma - start);
      say("env " + var + "=" + env_or(var.c_str(), "<unset>"));
      start = comma + 1;
    }
  }
  if (mode == "never_register") {
    std::this_thread::sleep_for(std::chrono::minutes(5));
    return 0;
  }

  Poco::Net::ServerSocket socket(Poco::Net::SocketAddress("0.0.0.0", 0));
  const std::string uri = "http://sandbox.localdomain:" + std::to_string(socket.address().port());
  Poco::Net::HTTPServer listener(new Listener, socket, new Poco::Net::HTTPServerParams);
  listener.start();

  const std::vector<std::string> event_choices =
      split(env_or("FAKE_EXT_EVENTS", "INVOKE,SHUTDOWN"), ';');
  const std::string register_path = "/2020-01-01/extension/register";
  const std::string next_path = "/2020-01-01/extension/event/next";
  if (probing) {
    probe("register-no-name", call("POST", register_path, {}, "{}"));
    probe("register-bad-json", call("POST", register_path, {{"Lambda-Extension-Name", name}}, "{"));
    probe("register-bad-event", call("POST", register_path, {{"Lambda-Extension-Name", name}},
                                     R"({"events":["INVOKE","BOGUS"]})"));
    probe("next-no-id", call("GET", next_path, {}, ""));
    probe("next-unknown-id",
          call("GET", next_path,
               {{"Lambda-Extension-Identifier", "0c0ffee0-0000-4000-8000-000000000000"}}, ""));
  }
  Reply registered;
  for (const auto& events : event_choices.empty() ? std::vector<std::string>{""} : event_choices) {
    registered =
        call("POST", register_path,
             {{"Lambda-Extension-Name", name}, {"Lambda-Extension-Accept-Feature", "accountId"}},
             R"({"events":)" + json_array(events) + "}");
    say("register " + std::to_string(registered.status) + " " + registered.body);
    if (registered.status == 200) break;
  }
  if (registered.status != 200) return 1;
  const std::map<std::string, std::string> id{{"Lambda-Extension-Identifier", registered.id}};

  if (probing) {
    probe("register-twice", call("POST", register_path, {{"Lambda-Extension-Name", name}},
                                 R"({"events":["INVOKE"]})"));
    probe("init-error-no-type", call("POST", "/2020-01-01/extension/init/error", id, ""));
    probe("unknown-route", call("GET", "/2020-01-01/extension/nope", id, ""));
    probe("subscribe-no-id",
          call("PUT", "/2022-07-01/telemetry", {}, subscription("platform", "{}", uri)));
    probe("subscribe-invalid",
          call("PUT", "/2022-07-01/telemetry", id,
               subscription("", R"({"maxItems":5,"timeoutMs":10})", "http://example.com")));
  }
  if (mode == "init_error") {
    auto headers = id;
    headers["Lambda-Extension-Function-Error-Type"] = "Extension.FakeInitError";
    const Reply reply =
        call("POST", "/2020-01-01/extension/init/error", headers,
             R"({"errorMessage":"fake init failure","errorType":"Extension.FakeInitError"})");
    say("init/error " + std::to_string(reply.status) + " " + reply.body);
    return 1;
  }

  const std::string types = env_or("FAKE_EXT_TYPES", "platform,function");
  const std::string buffering =
      env_or("FAKE_EXT_BUFFERING", R"({"maxItems":1000,"maxBytes":262144,"timeoutMs":25})");
  if (types != "none") {
    for (const auto& schema : split(env_or("FAKE_EXT_SCHEMA", "2022-12-13"), ',')) {
      const Reply subscribed =
          call("PUT", "/2022-07-01/telemetry", id, subscription(types, buffering, uri, schema));
      say("subscribe " + std::to_string(subscribed.status) + " " + subscribed.body);
      if (subscribed.status == 200) break;
    }
  }

  int invokes = 0;
  const std::string crash_prefix = "crash_on_invoke=";
  const int crash_on =
      mode.rfind(crash_prefix, 0) == 0 ? std::stoi(mode.substr(crash_prefix.size())) : -1;
  for (;;) {
    // Logged before the request leaves, so anything Lambda does in answer to it logs later.
    say("calling next");
    const Reply event = call("GET", next_path, id, "");
    if (event.status != 200) {
      say("next failed " + std::to_string(event.status) + " " + event.body);
      return 1;
    }
    const auto object = Poco::JSON::Parser().parse(event.body).extract<Poco::JSON::Object::Ptr>();
    const std::string type = object->getValue<std::string>("eventType");
    if (type == "INVOKE") {
      ++invokes;
      say("INVOKE " + object->getValue<std::string>("requestId"));
      if (probing && invokes == 1) {
        probe("subscribe-after-init",
              call("PUT", "/2022-07-01/telemetry", id, subscription(types, buffering, uri)));
      }
      if (invokes == crash_on) {
        say("crashing");
        std::_Exit(0);  // even exit code 0 outside SHUTDOWN is a crash
      }
      if (mode == "exit_error") {
        auto headers = id;
        headers["Lambda-Extension-Function-Error-Type"] = "Extension.FakeExitError";
        say("exit/error " +
            std::to_string(call("POST", "/2020-01-01/extension/exit/error", headers, "").status));
        return 1;
      }
      continue;
    }
    const auto left_ms = object->getValue<int64_t>("deadlineMs") -
                         std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
    say("SHUTDOWN " + object->getValue<std::string>("shutdownReason") + " deadline_in_ms " +
        std::to_string(left_ms));
    if (mode == "hang_on_shutdown") std::this_thread::sleep_for(std::chrono::minutes(5));
    std::this_thread::sleep_for(
        std::chrono::milliseconds(std::stoi(env_or("FAKE_EXT_DRAIN_MS", "300"))));
    listener.stopAll(true);
    const std::string code_prefix = "exit_code=";
    const int code =
        mode.rfind(code_prefix, 0) == 0 ? std::stoi(mode.substr(code_prefix.size())) : 0;
    // Handler threads may still be inside record(): leave without running static destructors.
    std::cerr.flush();
    std::_Exit(code);
  }
}
