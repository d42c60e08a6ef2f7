#include "http_util.h"

#include <Poco/StreamCopier.h>

#include "events.h"

namespace relay::emu {
namespace {

class FnHandler : public Poco::Net::HTTPRequestHandler {
 public:
  explicit FnHandler(const HandlerFn& fn) : fn_(fn) {}
  void handleRequest(Poco::Net::HTTPServerRequest& request,
                     Poco::Net::HTTPServerResponse& response) override {
    fn_(request, response);
  }

 private:
  const HandlerFn& fn_;
};

}  // namespace

Poco::Net::HTTPRequestHandler* FnHandlerFactory::createRequestHandler(
    const Poco::Net::HTTPServerRequest&) {
  return new FnHandler(fn_);
}

Answer error_answer(int status, std::string_view type, std::string_view message) {
  // RIE's JSON bodies end with a newline (json.Encoder).
  return Answer{status, R"({"errorMessage":)" + json_quote(message) + R"(,"errorType":)" +
                            json_quote(type) + "}\n"};
}

void send_answer(Poco::Net::HTTPServerResponse& response, const Answer& answer) {
  response.setStatus(static_cast<Poco::Net::HTTPResponse::HTTPStatus>(answer.status));
  if (!answer.body.empty()) response.setContentType(answer.content_type);
  for (const auto& [name, value] : answer.headers) response.set(name, value);
  response.setContentLength(static_cast<std::streamsize>(answer.body.size()));
  response.send().write(answer.body.data(), static_cast<std::streamsize>(answer.body.size()));
}

std::string read_body(Poco::Net::HTTPServerRequest& request) {
  std::string body;
  Poco::StreamCopier::copyToString(request.stream(), body);
  return body;
}

}  // namespace relay::emu
