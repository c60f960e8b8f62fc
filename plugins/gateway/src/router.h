// Maps (method, path segments) to a handler. Patterns are "/"-separated
// literals and {name} parameters; the first route added that matches wins,
// so literals ("/streams/$all") go before parameters ("/streams/{stream}").
// Built once before the server starts; read-only (thread-safe) afterwards.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "config.h"
#include "http_types.h"

namespace esdb_gateway {

class CircuitBreaker;

struct Route {
  std::string method;                 // "GET", "POST", "PUT", "DELETE"
  std::string pattern;                // "/streams/{stream}"
  std::vector<std::string> parts;     // pattern split on '/'
  Role role = Role::kRead;            // the least role allowed to call it
  Handler handler;
  std::string name;                   // "GET /streams/{stream}", the metrics label
  CircuitBreaker* circuit = nullptr;  // guards the callee behind it; set by the server (circuits.h)
};

struct RouteMatch {
  const Route* route = nullptr;                // null: no route for this method
  std::map<std::string, std::string> params;
  std::vector<std::string> allowed_methods;    // when the path matches other methods only (405)
  // The role a caller needs before learning anything about this request's
  // route: the matched route's; with only other methods matching, the least
  // of theirs (405 and Allow are for callers who may use the path); with no
  // path matching, kRead (an unknown path is 404 for authenticated callers only).
  Role role = Role::kRead;
};

class Router {
 public:
  void Add(const std::string& method, const std::string& pattern, Role role, Handler handler);
  RouteMatch Match(const std::string& method, const std::vector<std::string>& segments) const;
  const std::vector<Route>& routes() const { return routes_; }
  std::vector<Route>& routes() { return routes_; }  // before the server starts only

 private:
  static bool MatchParts(const Route& route, const std::vector<std::string>& segments,
                         std::map<std::string, std::string>* params);
  std::vector<Route> routes_;
};

}  // namespace esdb_gateway
