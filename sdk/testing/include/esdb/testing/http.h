// esdb testing kit: one HTTP/1.1 request to a loopback port.
//
//   auto r = esdb::testing::Http(port, "POST", "/streams/orders", events.dump(),
//                                {{"ES-ExpectedVersion", "any"}});
//   CHECK(r.status == 201);
//   CHECK(r.Json()["nextExpectedVersion"] == 0);
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

namespace esdb::testing {

struct HttpResult {
  int status = 0;  // 0: no response; `error` says why
  std::string body;
  std::map<std::string, std::string> headers;  // names in lower case
  std::string error;                           // connect/send/receive failure, timeout
  // The body as JSON; a discarded value when it is not JSON.
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

// Sends `method target` with `body` and `headers` (Host: 127.0.0.1 and
// Content-Length are set) to 127.0.0.1:`port` on a fresh connection, reads
// one response (a HEAD's without a body) and closes. Gives up after
// `timeout_ms` without data from the server (a real read timeout: every read
// waits in poll() first, see timed_socket.h). Never throws.
HttpResult Http(uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
                const std::map<std::string, std::string>& headers = {}, int timeout_ms = 20000);

}  // namespace esdb::testing
