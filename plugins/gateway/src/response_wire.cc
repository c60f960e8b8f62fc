#include "response_wire.h"

#include <cctype>
#include <string_view>
#include <utility>

#include <boost/beast/http/status.hpp>

namespace esdb_gateway {

namespace http = boost::beast::http;

namespace {

bool SameName(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) != std::tolower(static_cast<unsigned char>(b[i]))) return false;
  }
  return true;
}

}  // namespace

void AppendResponseWire(const Response& r, unsigned version, bool keep_alive, bool head, std::string* out) {
  const auto reason = http::obsolete_reason(static_cast<http::status>(r.status));
  out->append(version == 10 ? "HTTP/1.0 " : "HTTP/1.1 ");
  out->append(std::to_string(r.status));
  out->push_back(' ');
  out->append(reason.data(), reason.size());
  out->append("\r\n");
  // Server, Content-Type, then the handler's headers; like Beast's set(), a
  // later field replaces an earlier one of the same name.
  const size_t fixed = r.content_type.empty() ? 1 : 2;
  const size_t count = fixed + r.headers.size();
  auto field = [&](size_t i) -> std::pair<std::string_view, std::string_view> {
    if (i == 0) return {"Server", "esdb"};
    if (i < fixed) return {"Content-Type", r.content_type};
    return {r.headers[i - fixed].first, r.headers[i - fixed].second};
  };
  for (size_t i = 0; i < count; ++i) {
    const auto [name, value] = field(i);
    bool replaced = false;
    for (size_t j = i + 1; j < count && !replaced; ++j) replaced = SameName(name, field(j).first);
    if (replaced) continue;
    out->append(name);
    out->append(": ");
    out->append(value);
    out->append("\r\n");
  }
  if (version == 10 && keep_alive) out->append("Connection: keep-alive\r\n");
  if (version != 10 && !keep_alive) out->append("Connection: close\r\n");
  out->append("Content-Length: ");
  out->append(std::to_string(r.body.size()));
  out->append("\r\n\r\n");
  if (!head) out->append(r.body);
}

}  // namespace esdb_gateway
