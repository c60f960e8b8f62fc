// Cluster membership as observed from heartbeats (cluster mode of the
// cluster plugin): each node publishes a heartbeat every heartbeat_ms on a
// core NATS subject; every node keeps the members it hears.
//
//   first heartbeat of a node          -> node_joined   (retained, key "member:<slot>")
//   a node silent past node_timeout_ms,
//   or its goodbye                     -> node_left     (same key)
//   a node's heartbeat with another
//   incarnation (it restarted)         -> node_left, then node_joined
//   members reach a quorum of
//   expected_nodes (more than half)    -> cluster_formed (retained, key "cluster"), each time the
//                                         quorum is reached again after it was lost
//
// A name keeps its retained slot while it is a member and after it left,
// until a new name needs the slot: at most 2 * max_members slots, so the bus
// retains the members and the names that left most recently, however many
// names heartbeats come with over time (a departed name's slot is reused,
// oldest departure first, and its node_left is no longer replayed).
//
// Pure logic, no I/O: the plugin feeds it heartbeats and the time. Not
// thread-safe: the plugin calls it under its lock.
#pragma once

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <utility>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <esdb/status.h>

namespace esdb_cluster {

// One heartbeat, as JSON on the wire:
// {"node", "incarnation", "applied_sequence", "http", "process", "goodbye", "grpc", "wall_us"}
// ("grpc" and "wall_us" may be absent: nodes of earlier builds do not send them).
struct Heartbeat {
  std::string node;               // the node's name (esdb-host --node), 1 to 256 printable characters
  uint64_t incarnation = 0;       // differs at each start of the node
  uint64_t applied_sequence = 0;  // the last log entry the node applied (0: unknown)
  std::string http;               // the node's HTTP address "host:port", empty before its gateway listens
  std::string process;            // "<host name>/<pid>" of the esdb-host: tells a second node of the same name
                                  // from another generation of this node's own cluster plugin (a reload)
  bool goodbye = false;           // the node is stopping
  std::string grpc;               // the node's gRPC address "host:port" (its grpc plugin), empty when it has none
  uint64_t wall_us = 0;           // the sender's clock when it sent this (microseconds since the Unix epoch; 0: not sent)
};

// Reads a message `what` ("heartbeat") that came from the network: a JSON
// object of at most 4096 bytes with the fields `node` (1 to 256 characters, no control character) and `http` (a
// string of at most 300), and the unsigned integers `numbers`. The object
// (for its other fields), or kInvalidArgument naming what is wrong.
esdb::Result<nlohmann::json> DecodeClusterMessage(std::string_view text, const char* what, std::string* node,
                                                  std::string* http,
                                                  std::initializer_list<std::pair<const char*, uint64_t*>> numbers);

std::string EncodeHeartbeat(const Heartbeat& h);
// kInvalidArgument naming what is wrong; the bytes come from the network.
esdb::Result<Heartbeat> DecodeHeartbeat(std::string_view text);

// A bus event to publish on topic "cluster".
struct MemberEvent {
  std::string type;        // node_joined, node_left, cluster_formed
  std::string retain_key;  // MemberRetainKey(slot) or "cluster"
  nlohmann::json data;     // {"node", "http", "grpc", "incarnation"} or {"members", "size", "expected"}
};

// The retain key of membership slot `slot`: "member:<slot>".
std::string MemberRetainKey(size_t slot);

class Membership {
 public:
  // At most `max_members` members at once (default 64): heartbeats carry
  // any name a NATS client chooses, and each member is a table entry and a
  // retained event on every node's bus.
  Membership(int expected_nodes, int64_t node_timeout_ms, size_t max_members = 64)
      : expected_(expected_nodes), timeout_ms_(node_timeout_ms), max_members_(max_members) {}

  // `now_ms`: a steady clock; `wall_now_us`: this node's clock as in
  // Heartbeat::wall_us (0: do not estimate the sender's clock offset).
  // A heartbeat of a node that is not a member while there are max_members
  // is ignored (no event) and counted in refused().
  std::vector<MemberEvent> Observe(const Heartbeat& h, int64_t now_ms, int64_t wall_now_us = 0);
  // Heartbeats ignored because the table was full.
  uint64_t refused() const { return refused_; }
  // Members silent for longer than the timeout leave.
  std::vector<MemberEvent> Expire(int64_t now_ms);
  // `node` leaves now (this node, stopping), if it is a member.
  std::vector<MemberEvent> Depart(const std::string& node);
  // How many members there are now.
  size_t size() const { return members_.size(); }
  // Names holding a retained slot (members and remembered departures), <= 2 * max_members.
  size_t retained_names() const { return slot_of_.size(); }
  // [{"node", "http", "grpc", "applied_sequence", "incarnation", "last_seen_ms_ago", "clock_offset_ms"}], by
  // name. clock_offset_ms: the member's clock minus this node's as its last
  // heartbeat showed (its wall_us against this node's clock when it came,
  // so the transit time counts as a delay: on a LAN well under a
  // millisecond); null when unknown.
  nlohmann::json Members(int64_t now_ms) const;
  // The members whose |clock_offset_ms| is above `max_ms`: name -> offset.
  std::map<std::string, int64_t> ClockOffsetsAbove(int64_t max_ms) const;
  bool formed() const { return formed_; }

 private:
  struct Member {
    uint64_t incarnation = 0;
    uint64_t applied_sequence = 0;
    std::string http;
    std::string grpc;
    int64_t last_seen_ms = 0;
    bool clock_known = false;
    int64_t clock_offset_ms = 0;
  };
  void Joined(const std::string& node, const Member& m, std::vector<MemberEvent>* out);
  void Left(const std::string& node, const char* why, std::vector<MemberEvent>* out);
  void CheckQuorum(std::vector<MemberEvent>* out);
  // The slot of `node`, which is joining: its own, a free one, or the one of
  // the name that left longest ago.
  size_t SlotFor(const std::string& node);

  const int expected_;
  const int64_t timeout_ms_;
  const size_t max_members_;
  uint64_t refused_ = 0;
  std::map<std::string, Member> members_;
  std::map<std::string, size_t> slot_of_;  // members and remembered departures
  std::deque<std::string> departed_;       // names in slot_of_ that are not members, oldest departure first
  size_t slots_used_ = 0;                  // slots handed out, <= 2 * max_members_
  bool formed_ = false;  // a quorum is present
};

}  // namespace esdb_cluster
