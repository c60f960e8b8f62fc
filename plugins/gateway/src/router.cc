#include "router.h"

#include <algorithm>

namespace esdb_gateway {

void Router::Add(const std::string& method, const std::string& pattern, Role role, Handler handler) {
  Route r;
  r.method = method;
  r.pattern = pattern;
  r.role = role;
  r.handler = std::move(handler);
  r.name = method + " " + pattern;
  size_t start = 1;
  while (start <= pattern.size()) {
    size_t end = pattern.find('/', start);
    if (end == std::string::npos) end = pattern.size();
    if (end > start) r.parts.push_back(pattern.substr(start, end - start));
    start = end + 1;
  }
  routes_.push_back(std::move(r));
}

bool Router::MatchParts(const Route& route, const std::vector<std::string>& segments,
                        std::map<std::string, std::string>* params) {
  if (route.parts.size() != segments.size()) return false;
  for (size_t i = 0; i < segments.size(); ++i) {
    const std::string& part = route.parts[i];
    if (part.size() >= 2 && part.front() == '{' && part.back() == '}') {
      (*params)[part.substr(1, part.size() - 2)] = segments[i];
    } else if (part != segments[i]) {
      return false;
    }
  }
  return true;
}

RouteMatch Router::Match(const std::string& method, const std::vector<std::string>& segments) const {
  RouteMatch m;
  // HEAD is served as GET without a body.
  const std::string& wanted = method == "HEAD" ? std::string("GET") : method;
  for (const Route& r : routes_) {
    std::map<std::string, std::string> params;
    if (!MatchParts(r, segments, &params)) continue;
    if (r.method == wanted) {
      // A literal route for another method must not shadow a later
      // parameter route of this method, so keep scanning on mismatch only.
      m.route = &r;
      m.params = std::move(params);
      m.allowed_methods.clear();
      m.role = r.role;
      return m;
    }
    if (m.allowed_methods.empty() || r.role < m.role) m.role = r.role;
    if (std::find(m.allowed_methods.begin(), m.allowed_methods.end(), r.method) == m.allowed_methods.end()) {
      m.allowed_methods.push_back(r.method);
    }
  }
  if (m.allowed_methods.empty()) m.role = Role::kRead;
  return m;
}

}  // namespace esdb_gateway
