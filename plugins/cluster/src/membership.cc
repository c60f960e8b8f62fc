#include "membership.h"

#include <algorithm>

#include <esdb/bus_events.h>

namespace esdb_cluster {

std::string EncodeHeartbeat(const Heartbeat& h) {
  return nlohmann::json{{"node", h.node},
                        {"incarnation", h.incarnation},
                        {"applied_sequence", h.applied_sequence},
                        {"http", h.http},
                        {"process", h.process},
                        {"goodbye", h.goodbye},
                        {"grpc", h.grpc},
                        {"wall_us", h.wall_us}}
      .dump();
}

esdb::Result<nlohmann::json> DecodeClusterMessage(std::string_view text, const char* what, std::string* node_out,
                                                  std::string* http_out,
                                                  std::initializer_list<std::pair<const char*, uint64_t*>> numbers) {
  const std::string w = what;
  if (text.size() > 4096) return esdb::Status::InvalidArgument(w + " larger than 4096 bytes");
  nlohmann::json j = nlohmann::json::parse(text, nullptr, false);
  if (!j.is_object()) return esdb::Status::InvalidArgument(w + " is not a JSON object");
  auto node = j.find("node");
  if (node == j.end() || !node->is_string()) return esdb::Status::InvalidArgument(w + ": 'node' is not a string");
  const std::string& name = node->get_ref<const std::string&>();
  if (name.empty() || name.size() > 256) return esdb::Status::InvalidArgument(w + ": 'node' is empty or too long");
  for (char c : name) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return esdb::Status::InvalidArgument(w + ": 'node' has a control character");
  }
  auto http = j.find("http");
  if (http == j.end() || !http->is_string() || http->get_ref<const std::string&>().size() > 300) {
    return esdb::Status::InvalidArgument(w + ": 'http' is not an address string");
  }
  for (auto [field, out] : numbers) {
    auto v = j.find(field);
    if (v == j.end() || !v->is_number_unsigned()) {
      return esdb::Status::InvalidArgument(w + ": '" + field + "' is not an unsigned integer");
    }
    *out = v->get<uint64_t>();
  }
  *node_out = name;
  *http_out = http->get<std::string>();
  return j;
}

esdb::Result<Heartbeat> DecodeHeartbeat(std::string_view text) {
  Heartbeat h;
  esdb::Result<nlohmann::json> parsed =
      DecodeClusterMessage(text, "heartbeat", &h.node, &h.http,
                           {{"incarnation", &h.incarnation}, {"applied_sequence", &h.applied_sequence}});
  if (!parsed.ok()) return parsed.status();
  const nlohmann::json& j = *parsed;
  auto process = j.find("process");
  if (process == j.end() || !process->is_string() || process->get_ref<const std::string&>().size() > 300) {
    return esdb::Status::InvalidArgument("heartbeat: 'process' is not a string");
  }
  h.process = process->get<std::string>();
  auto goodbye = j.find("goodbye");
  if (goodbye == j.end() || !goodbye->is_boolean()) return esdb::Status::InvalidArgument("heartbeat: 'goodbye' is not a boolean");
  h.goodbye = goodbye->get<bool>();
  auto grpc = j.find("grpc");
  if (grpc != j.end()) {
    if (!grpc->is_string() || grpc->get_ref<const std::string&>().size() > 300) {
      return esdb::Status::InvalidArgument("heartbeat: 'grpc' is not an address string");
    }
    h.grpc = grpc->get<std::string>();
  }
  auto wall = j.find("wall_us");
  if (wall != j.end()) {
    if (!wall->is_number_unsigned()) return esdb::Status::InvalidArgument("heartbeat: 'wall_us' is not an unsigned integer");
    h.wall_us = wall->get<uint64_t>();
    // Microseconds since 1970 below 2^62 (year ~148,000): the offset below
    // stays far from overflow whatever a sender claims.
    if (h.wall_us >= (uint64_t{1} << 62)) return esdb::Status::InvalidArgument("heartbeat: 'wall_us' is out of range");
  }
  return h;
}

std::string MemberRetainKey(size_t slot) { return "member:" + std::to_string(slot); }

size_t Membership::SlotFor(const std::string& node) {
  auto it = slot_of_.find(node);
  if (it != slot_of_.end()) {
    auto d = std::find(departed_.begin(), departed_.end(), node);
    if (d != departed_.end()) departed_.erase(d);
    return it->second;
  }
  size_t slot = 0;
  if (slots_used_ < 2 * max_members_ || departed_.empty()) {
    slot = slots_used_++;
  } else {
    // Every slot is taken and at most max_members_ hold members: the
    // departure longest ago gives its slot up.
    auto oldest = slot_of_.find(departed_.front());
    slot = oldest->second;
    slot_of_.erase(oldest);
    departed_.pop_front();
  }
  slot_of_.emplace(node, slot);
  return slot;
}

void Membership::Joined(const std::string& node, const Member& m, std::vector<MemberEvent>* out) {
  members_[node] = m;
  out->push_back({esdb::event_types::kNodeJoined, MemberRetainKey(SlotFor(node)),
                  {{"node", node}, {"http", m.http}, {"grpc", m.grpc}, {"incarnation", m.incarnation}}});
}

void Membership::Left(const std::string& node, const char* why, std::vector<MemberEvent>* out) {
  members_.erase(node);
  departed_.push_back(node);
  out->push_back({esdb::event_types::kNodeLeft, MemberRetainKey(slot_of_.at(node)), {{"node", node}, {"reason", why}}});
}

void Membership::CheckQuorum(std::vector<MemberEvent>* out) {
  const bool quorum = static_cast<int>(members_.size()) * 2 > expected_;
  if (quorum && !formed_) {
    nlohmann::json names = nlohmann::json::array();
    for (const auto& [name, m] : members_) names.push_back(name);
    out->push_back({esdb::event_types::kClusterFormed, "cluster",
                    {{"members", names}, {"size", members_.size()}, {"expected", expected_}}});
  }
  formed_ = quorum;
}

std::vector<MemberEvent> Membership::Observe(const Heartbeat& h, int64_t now_ms, int64_t wall_now_us) {
  std::vector<MemberEvent> out;
  auto it = members_.find(h.node);
  if (h.goodbye) {
    if (it != members_.end() && it->second.incarnation == h.incarnation) Left(h.node, "goodbye", &out);
    CheckQuorum(&out);
    return out;
  }
  if (it == members_.end() && members_.size() >= max_members_) {
    ++refused_;
    return out;
  }
  Member m{h.incarnation, h.applied_sequence, h.http, h.grpc, now_ms};
  if (h.wall_us != 0 && wall_now_us > 0) {
    m.clock_known = true;
    m.clock_offset_ms = (static_cast<int64_t>(h.wall_us) - wall_now_us) / 1000;
  }
  if (it == members_.end()) {
    Joined(h.node, m, &out);
  } else if (it->second.incarnation != h.incarnation) {
    Left(h.node, "restarted", &out);
    Joined(h.node, m, &out);
  } else {
    const bool address_changed = it->second.http != h.http || it->second.grpc != h.grpc;
    if (address_changed) {
      Joined(h.node, m, &out);  // the retained node_joined says where it serves
    } else {
      it->second = m;
    }
  }
  CheckQuorum(&out);
  return out;
}

std::vector<MemberEvent> Membership::Depart(const std::string& node) {
  std::vector<MemberEvent> out;
  if (members_.count(node) == 0) return out;
  Left(node, "goodbye", &out);
  CheckQuorum(&out);
  return out;
}

std::vector<MemberEvent> Membership::Expire(int64_t now_ms) {
  std::vector<MemberEvent> out;
  std::vector<std::string> silent;
  for (const auto& [name, m] : members_) {
    if (now_ms - m.last_seen_ms > timeout_ms_) silent.push_back(name);
  }
  for (const std::string& name : silent) Left(name, "timeout", &out);
  CheckQuorum(&out);
  return out;
}

nlohmann::json Membership::Members(int64_t now_ms) const {
  nlohmann::json list = nlohmann::json::array();
  for (const auto& [name, m] : members_) {
    list.push_back({{"node", name},
                    {"http", m.http},
                    {"grpc", m.grpc},
                    {"applied_sequence", m.applied_sequence},
                    {"incarnation", m.incarnation},
                    {"last_seen_ms_ago", now_ms - m.last_seen_ms},
                    {"clock_offset_ms", m.clock_known ? nlohmann::json(m.clock_offset_ms) : nlohmann::json()}});
  }
  return list;
}

std::map<std::string, int64_t> Membership::ClockOffsetsAbove(int64_t max_ms) const {
  std::map<std::string, int64_t> out;
  for (const auto& [name, m] : members_) {
    if (m.clock_known && (m.clock_offset_ms > max_ms || m.clock_offset_ms < -max_ms)) out[name] = m.clock_offset_ms;
  }
  return out;
}

}  // namespace esdb_cluster
