#pragma once

// Small POCO HTTP server helpers shared by the emulator's API and the receiver.

#include <Poco/Net/HTTPRequestHandler.h>
#include <Poco/Net/HTTPRequestHandlerFactory.h>
#include <Poco/Net/HTTPServerRequest.h>
#include <Poco/Net/HTTPServerResponse.h>

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace relay::emu {

using HandlerFn =
    std::function<void(Poco::Net::HTTPServerRequest&, Poco::Net::HTTPServerResponse&)>;

// Routes every request to one function, so a server's logic lives in one place.
class FnHandlerFactory : public Poco::Net::HTTPRequestHandlerFactory {
 public:
  explicit FnHandlerFactory(HandlerFn fn) : fn_(std::move(fn)) {}
  Poco::Net::HTTPRequestHandler* createRequestHandler(const Poco::Net::HTTPServerRequest&) override;

 private:
  HandlerFn fn_;
};

struct Answer {
  using Headers = std::vector<std::pair<std::string, std::string>>;
  Answer(int status_code, std::string body_text, std::string type = "application/json",
         Headers extra_headers = {})
      : status(status_code),
        body(std::move(body_text)),
        content_type(std::move(type)),
        headers(std::move(extra_headers)) {}

  int status;
  std::string body;
  std::string content_type;
  Headers headers;
};

// {"errorMessage","errorType"} as the Extensions and Telemetry APIs answer errors.
Answer error_answer(int status, std::string_view type, std::string_view message);
void send_answer(Poco::Net::HTTPServerResponse& response, const Answer& answer);
std::string read_body(Poco::Net::HTTPServerRequest& request);

}  // namespace relay::emu
