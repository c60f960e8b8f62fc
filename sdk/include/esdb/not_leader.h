// The not-leader answer of cluster mode, header-only: how a service that
// runs on the cluster's leader only (the persistent groups of
// esdb.subscriptions/2 and /1) tells a caller on a follower where the leader is.
//
// No new Code: the status is kFailedPrecondition with a message that starts
// with "not_leader: " and carries the leader's name and addresses as
// space-separated `key=value` words (values without spaces; empty when not
// known): "not_leader: <why>; leader=node-2 http=127.0.0.1:2123
// grpc=127.0.0.1:2124". Front ends (the gateway, the grpc plugin) recognise
// it with ParseNotLeader and answer in their protocol's not-leader form.
#pragma once

#include <optional>
#include <string>

#include "esdb/status.h"

namespace esdb {

struct NotLeader {
  std::string leader;  // the leader's node name
  std::string http;    // its HTTP address "host:port" ("" when not known)
  std::string grpc;    // its gRPC address "host:port" ("" when not known)
};

inline constexpr const char* kNotLeaderPrefix = "not_leader: ";

inline Status NotLeaderStatus(const std::string& why, const NotLeader& l) {
  return Status::FailedPrecondition(std::string(kNotLeaderPrefix) + why + "; leader=" + l.leader +
                                    " http=" + l.http + " grpc=" + l.grpc);
}

// The leader named by a NotLeaderStatus; nullopt for any other status.
inline std::optional<NotLeader> ParseNotLeader(const Status& s) {
  if (s.code() != Code::kFailedPrecondition) return std::nullopt;
  const std::string& m = s.message();
  const std::string prefix = kNotLeaderPrefix;
  if (m.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  const size_t tail = m.rfind("; leader=");
  if (tail == std::string::npos) return std::nullopt;
  auto word = [&](const std::string& key) {
    const size_t at = m.find(key, tail);
    if (at == std::string::npos) return std::string();
    const size_t from = at + key.size();
    const size_t end = m.find(' ', from);
    return m.substr(from, end == std::string::npos ? std::string::npos : end - from);
  };
  NotLeader l;
  l.leader = word("; leader=");
  l.http = word(" http=");
  l.grpc = word(" grpc=");
  return l;
}

}  // namespace esdb
