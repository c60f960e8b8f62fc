#include "json_util.h"

namespace esdb_gateway {

std::string Dump(const nlohmann::json& j) {
  return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

Response JsonResponse(int status, const nlohmann::json& j) {
  Response r;
  r.status = status;
  r.body = Dump(j);
  return r;
}

Response ErrorResponse(int status, const std::string& error, const std::string& message, nlohmann::json extra) {
  nlohmann::json body = {{"error", error}, {"message", message}};
  if (extra.is_object()) {
    for (auto& [k, v] : extra.items()) body[k] = v;
  }
  return JsonResponse(status, body);
}

int HttpStatusFor(esdb::Code code) {
  using esdb::Code;
  switch (code) {
    case Code::kOk: return 200;
    case Code::kInvalidArgument: return 400;
    case Code::kNotFound: return 404;
    case Code::kAlreadyExists: return 409;
    case Code::kFailedPrecondition: return 409;
    case Code::kWrongExpectedVersion: return 409;
    case Code::kStreamDeleted: return 410;
    case Code::kUnavailable: return 503;
    case Code::kResourceExhausted: return 429;
    case Code::kTimeout: return 504;
    case Code::kIOError: return 500;
    case Code::kCorruption: return 500;
    case Code::kCancelled: return 503;
    case Code::kUnauthenticated: return 401;
    case Code::kPermissionDenied: return 403;
    case Code::kInternal: return 500;
  }
  return 500;
}

Response StatusResponse(const esdb::Status& status, nlohmann::json extra) {
  if (status.code() == esdb::Code::kWrongExpectedVersion && status.detail() && !extra.contains("current")) {
    extra["current"] = *status.detail();
  }
  Response r = ErrorResponse(HttpStatusFor(status.code()), esdb::CodeName(status.code()), status.message(),
                             std::move(extra));
  // Unavailable / cancelled: a subsystem is stopping or switching builds; the request did nothing.
  if (r.status == 503) r.headers.emplace_back("Retry-After", kRetryAfterSeconds);
  return r;
}

bool IsValidUtf8(const std::string& s) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    size_t len;
    uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else {
      return false;
    }
    if (i + len > n) return false;
    for (size_t k = 1; k < len; ++k) {
      const unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, surrogates, beyond U+10FFFF.
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF) {
      return false;
    }
    i += len;
  }
  return true;
}

}  // namespace esdb_gateway
