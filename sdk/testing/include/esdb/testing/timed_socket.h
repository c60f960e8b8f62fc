// esdb testing kit: the pieces of Http() for a client of your own (Boost.Beast
// over a blocking loopback socket) whose reads must not hang.
#pragma once

#include <poll.h>

#include <cctype>
#include <cerrno>
#include <cstddef>
#include <map>
#include <string>

#include <boost/asio/error.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/system/system_error.hpp>

#include "esdb/testing/http.h"

namespace esdb::testing {

// True when `fd` becomes readable within `timeout_ms`; else false with `ec`
// set (timed_out, or poll's error). Asio's blocking reads ignore
// SO_RCVTIMEO (after EAGAIN they poll again without a limit), so a read that
// must give up waits here first.
inline bool WaitReadable(int fd, int timeout_ms, boost::beast::error_code& ec) {
  pollfd p{fd, POLLIN, 0};
  int r;
  do {
    r = ::poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r > 0) return true;
  ec = r == 0 ? boost::beast::error_code(boost::asio::error::timed_out)
              : boost::beast::error_code(errno, boost::system::system_category());
  return false;
}

// A blocking SyncStream over a connected socket whose reads give up after
// `timeout_ms` without data (see WaitReadable); for Beast's synchronous
// http::read and friends. Writes go straight to the socket.
class TimedSocket {
 public:
  TimedSocket(boost::asio::ip::tcp::socket& s, int timeout_ms) : s_(s), ms_(timeout_ms) {}
  template <class Buffers>
  size_t read_some(const Buffers& b, boost::beast::error_code& ec) {
    if (!WaitReadable(s_.native_handle(), ms_, ec)) return 0;
    return s_.read_some(b, ec);
  }
  template <class Buffers>
  size_t read_some(const Buffers& b) {
    boost::beast::error_code ec;
    const size_t n = read_some(b, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& b, boost::beast::error_code& ec) {
    return s_.write_some(b, ec);
  }
  template <class Buffers>
  size_t write_some(const Buffers& b) {
    return s_.write_some(b);
  }

 private:
  boost::asio::ip::tcp::socket& s_;
  int ms_;
};

// The request Http() sends: HTTP/1.1, Host: 127.0.0.1, `headers`, `body`
// with its Content-Length.
inline boost::beast::http::request<boost::beast::http::string_body> MakeRequest(
    const std::string& method, const std::string& target, const std::string& body,
    const std::map<std::string, std::string>& headers) {
  boost::beast::http::request<boost::beast::http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(boost::beast::http::field::host, "127.0.0.1");
  for (const auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  return req;
}

// Status, body and lower-cased headers of a parsed response.
inline HttpResult ToResult(const boost::beast::http::response<boost::beast::http::string_body>& res) {
  HttpResult r;
  r.status = static_cast<int>(res.result_int());
  r.body = res.body();
  for (const auto& f : res) {
    std::string name(f.name_string());
    for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    r.headers[name] = std::string(f.value());
  }
  return r;
}

}  // namespace esdb::testing
