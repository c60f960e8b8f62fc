// The gateway tests' HTTP helpers beyond the testing kit's Http() (one
// request, esdb/testing/http.h): raw-bytes exchanges for hostile input and an
// SSE reader, whose reads wait in poll() first (esdb/testing/timed_socket.h).
#pragma once

#include <array>
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

#include "esdb/testing/http.h"
#include "esdb/testing/timed_socket.h"

namespace gwtest {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;

using esdb::testing::Http;
using esdb::testing::HttpResult;
using esdb::testing::MakeRequest;
using esdb::testing::TimedSocket;
using esdb::testing::ToResult;
using esdb::testing::WaitReadable;

inline void SetTimeouts(tcp::socket& s, int seconds) {
  struct timeval tv {seconds, 0};
  setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(s.native_handle(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
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
  TimedSocket timed(socket, timeout_s * 1000);
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
    size_t n = TimedSocket(socket_, 20000).read_some(net::buffer(buf), ec);
    raw_.append(buf.data(), n);
    return !ec || n > 0;
  }
  net::io_context io_;
  tcp::socket socket_;
  std::string raw_, header_;
};

}  // namespace gwtest
