// A small synchronous HTTP client for the tests (Beast over a fresh
// loopback connection per call), plus raw-bytes exchanges for hostile input.
#pragma once

#include <poll.h>

#include <chrono>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace gwtest {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

struct HttpResult {
  int status = 0;
  std::string body;
  std::map<std::string, std::string> headers;  // lower-case names
  nlohmann::json Json() const { return nlohmann::json::parse(body, nullptr, false); }
};

inline void SetTimeouts(tcp::socket& s, int seconds) {
  struct timeval tv {seconds, 0};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// True when `fd` becomes readable within `ms`; else `ec` says timed_out.
// asio's blocking reads ignore SO_RCVTIMEO (after EAGAIN they poll again
// without a limit), so every read of these helpers waits here first.
inline bool WaitReadable(int fd, int ms, beast::error_code& ec) {
  pollfd p{fd, POLLIN, 0};
  const int r = ::poll(&p, 1, ms);
  if (r > 0) return true;
  ec = r == 0 ? beast::error_code(net::error::timed_out) : beast::error_code(errno, boost::system::system_category());
  return false;
}

// A blocking stream over a connected socket whose reads give up after
// `seconds` (see WaitReadable); for Beast's synchronous http::read.
class TimedSocket {
 public:
  TimedSocket(tcp::socket& s, int seconds) : s_(s), ms_(seconds * 1000) {}
  template <class Buffers>
  size_t read_some(const Buffers& b, beast::error_code& ec) {
    if (!WaitReadable(s_.native_handle(), ms_, ec)) return 0;
    return s_.read_some(b, ec);
  }
  template <class Buffers>
  size_t read_some(const Buffers& b) {
    beast::error_code ec;
    const size_t n = read_some(b, ec);
    if (ec) throw boost::system::system_error(ec);
    return n;
  }
  template <class Buffers>
  size_t write_some(const Buffers& b, beast::error_code& ec) { return s_.write_some(b, ec); }
  template <class Buffers>
  size_t write_some(const Buffers& b) { return s_.write_some(b); }

 private:
  tcp::socket& s_;
  int ms_;
};

// An HTTP/1.1 request to the loopback host with `headers` and `body`.
inline http::request<http::string_body> MakeRequest(const std::string& method, const std::string& target,
                                                    const std::string& body,
                                                    const std::map<std::string, std::string>& headers) {
  http::request<http::string_body> req;
  req.method_string(method);
  req.target(target);
  req.version(11);
  req.set(http::field::host, "127.0.0.1");
  for (auto& [k, v] : headers) req.set(k, v);
  req.body() = body;
  req.prepare_payload();
  return req;
}

// Status, body and lower-cased headers of a parsed response.
inline HttpResult ToResult(const http::response<http::string_body>& res) {
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

inline HttpResult Http(uint16_t port, const std::string& method, const std::string& target,
                       const std::string& body = "", std::map<std::string, std::string> headers = {}) {
  net::io_context io;
  tcp::socket socket(io);
  socket.connect({net::ip::make_address("127.0.0.1"), port});
  SetTimeouts(socket, 20);
  http::write(socket, MakeRequest(method, target, body, headers));
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.body_limit(64u << 20);
  if (method == "HEAD") parser.skip(true);
  TimedSocket timed(socket, 20);
  http::read(timed, buffer, parser);
  HttpResult r = ToResult(parser.get());
  beast::error_code ec;
  socket.shutdown(tcp::socket::shutdown_both, ec);
  return r;
}

// True when `raw` holds one complete response with a Content-Length.
inline bool CompleteResponse(const std::string& raw) {
  const size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos) return false;
  std::string head = raw.substr(0, end);
  for (auto& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const size_t cl = head.find("content-length:");
  if (cl == std::string::npos) return false;
  return raw.size() >= end + 4 + std::strtoull(head.c_str() + cl + 15, nullptr, 10);
}

// Sends `bytes`, optionally half-closes, and returns what is received until
// one complete response is there, the server closes, or `timeout_s` passes.
inline std::string RawExchange(uint16_t port, const std::string& bytes, bool half_close, int timeout_s = 20) {
  net::io_context io;
  tcp::socket socket(io);
  socket.connect({net::ip::make_address("127.0.0.1"), port});
  SetTimeouts(socket, timeout_s);
  beast::error_code ec;
  net::write(socket, net::buffer(bytes), ec);
  if (half_close) socket.shutdown(tcp::socket::shutdown_send, ec);
  std::string out;
  std::array<char, 8192> buf;
  TimedSocket timed(socket, timeout_s);
  for (;;) {
    size_t n = timed.read_some(net::buffer(buf), ec);
    out.append(buf.data(), n);
    if (ec || CompleteResponse(out)) break;
  }
  return out;
}

// The status code of the first response in `raw` ("HTTP/1.1 400 ..."), or 0.
inline int StatusOf(const std::string& raw) {
  if (raw.size() < 12 || raw.compare(0, 5, "HTTP/") != 0) return 0;
  return std::atoi(raw.c_str() + 9);
}

// Reads an SSE stream: connects, sends a GET, and collects messages.
class SseReader {
 public:
  SseReader(uint16_t port, const std::string& target, std::map<std::string, std::string> headers = {})
      : socket_(io_) {
    socket_.connect({net::ip::make_address("127.0.0.1"), port});
    SetTimeouts(socket_, 20);
    std::string req = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
    for (auto& [k, v] : headers) req += k + ": " + v + "\r\n";
    req += "\r\n";
    net::write(socket_, net::buffer(req));
  }
  // Reads until the response header is complete; returns its status.
  int ReadHeader() {
    while (raw_.find("\r\n\r\n") == std::string::npos) {
      if (!Fill()) return 0;
    }
    const size_t end = raw_.find("\r\n\r\n");
    header_ = raw_.substr(0, end);
    raw_.erase(0, end + 4);
    return StatusOf(header_);
  }
  const std::string& header() const { return header_; }
  // Next message's fields (id, event, data); comments skipped. Empty map
  // when the stream ended.
  std::map<std::string, std::string> Next() {
    for (;;) {
      size_t end = raw_.find("\n\n");
      if (end == std::string::npos) {
        if (!Fill()) return {};
        continue;
      }
      std::string block = raw_.substr(0, end);
      raw_.erase(0, end + 2);
      std::map<std::string, std::string> msg;
      size_t pos = 0;
      while (pos <= block.size()) {
        size_t nl = block.find('\n', pos);
        if (nl == std::string::npos) nl = block.size();
        std::string line = block.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.empty() || line[0] == ':') continue;
        size_t colon = line.find(':');
        std::string field = line.substr(0, colon);
        std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
        if (!value.empty() && value[0] == ' ') value.erase(0, 1);
        // Several data lines make one value, joined with "\n" (the SSE spec).
        if (field == "data" && msg.count("data")) msg[field] += "\n" + value;
        else msg[field] = value;
      }
      if (!msg.empty()) return msg;
    }
  }
  // Stops reading (so the server's buffer fills) by simply not calling Next.
  tcp::socket& socket() { return socket_; }

 private:
  bool Fill() {
    std::array<char, 16384> buf;
    beast::error_code ec;
    size_t n = TimedSocket(socket_, 20).read_some(net::buffer(buf), ec);
    raw_.append(buf.data(), n);
    return !ec || n > 0;
  }
  net::io_context io_;
  tcp::socket socket_;
  std::string raw_, header_;
};

}  // namespace gwtest
