#include "esdb/testing/http.h"

#include <sys/socket.h>
#include <sys/time.h>

#include <exception>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/write.hpp>

#include "esdb/testing/timed_socket.h"

namespace esdb::testing {

HttpResult Http(uint16_t port, const std::string& method, const std::string& target, const std::string& body,
                const std::map<std::string, std::string>& headers, int timeout_ms) {
  namespace net = boost::asio;
  namespace http = boost::beast::http;
  try {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect({net::ip::make_address("127.0.0.1"), port});
    // Writes do honour SO_SNDTIMEO (a server that stops reading).
    timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    setsockopt(socket.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    http::write(socket, MakeRequest(method, target, body, headers));
    boost::beast::flat_buffer buffer;
    http::response_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    if (method == "HEAD") parser.skip(true);
    TimedSocket timed(socket, timeout_ms);
    http::read(timed, buffer, parser);
    HttpResult r = ToResult(parser.get());
    boost::beast::error_code ec;
    socket.shutdown(net::ip::tcp::socket::shutdown_both, ec);
    return r;
  } catch (const std::exception& e) {
    HttpResult r;
    r.error = method + " " + target + " to 127.0.0.1:" + std::to_string(port) + ": " + e.what();
    return r;
  }
}

}  // namespace esdb::testing
