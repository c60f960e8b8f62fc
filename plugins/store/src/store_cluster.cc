// StoreCore in cluster mode: the proposer (requests -> one log entry per
// group), the applier (log entries, in order -> ProcessGroup(), the same
// decide-and-commit code as single-node mode), and the answers to this
// node's requests. plugins/store/README.md, "Cluster mode".
#include <openssl/evp.h>

#include <cstdio>
#include <future>
#include <random>

#include <spdlog/logger.h>

#include "group_codec.h"
#include "key_layout.h"
#include "lease_rule.h"
#include "store_core.h"
#include "store_core_internal.h"

namespace esdb_store {
namespace {

// Entries waiting for the applier before the tail is held back.
constexpr size_t kMaxApplyQueue = 4096;
// Applied entries whose running hash is kept for comparing checkpoints.
constexpr size_t kHashRingSize = 65536;
// What the proposer adds to the bytes of a request in a log entry, at most
// (kind, stream length, expected version) and per event (flags, id, four
// length prefixes).
constexpr size_t kRequestOverhead = 32;
constexpr size_t kEventOverhead = 40;

std::string Sha256(std::initializer_list<std::string_view> parts) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  for (std::string_view p : parts) EVP_DigestUpdate(ctx, p.data(), p.size());
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  return std::string(reinterpret_cast<const char*>(md), len);
}

// The entry alone: its sequence, id and data (length-prefixed, so no two
// entries frame alike).
std::string EntryDigest(const esdb::LogEntry& e) {
  std::string head;
  PutFixed64BE(&head, e.sequence);
  PutFixed64BE(&head, e.id.size());
  head += e.id;
  PutFixed64BE(&head, e.data.size());
  return Sha256({head, e.data});
}

std::string Hex(std::string_view bytes) {
  static const char* const kDigits = "0123456789abcdef";
  std::string out;
  for (char c : bytes) {
    out.push_back(kDigits[(static_cast<uint8_t>(c) >> 4) & 0xf]);
    out.push_back(kDigits[static_cast<uint8_t>(c) & 0xf]);
  }
  return out;
}

size_t ProposedBytes(const StoreCore::Request& r, size_t events) {
  return r.bytes + r.stream.size() + kRequestOverhead + kEventOverhead * events;
}

// Answers a proposer's requests with the outcomes decided at apply, or all
// with `error`. Outside any lock.
void Answer(std::vector<std::unique_ptr<StoreCore::Request>>& requests, const std::vector<esdb::Status>* statuses,
            const std::vector<esdb::AppendResult>* results, const esdb::Status& error) {
  for (size_t i = 0; i < requests.size(); ++i) {
    StoreCore::Request& r = *requests[i];
    esdb::Status st = statuses != nullptr ? (*statuses)[i] : error;
    try {
      if (r.append_done) {
        if (st.ok()) r.append_done((*results)[i]);
        else r.append_done(std::move(st));
      } else if (r.lease_done) {
        if (st.ok()) r.lease_done(r.lease_outcome);
        else r.lease_done(std::move(st));
      } else if (r.scavenge_done) {
        if (st.ok()) r.scavenge_done(r.scavenge_result);
        else r.scavenge_done(std::move(st));
      } else if (r.status_done) {
        r.status_done(std::move(st));
      }
    } catch (...) {
    }
  }
}

// The log's answer to one of this node's entries. Touches only `table`: it
// may come after the store closed.
void OnPublished(const std::shared_ptr<PendingGroups>& table, const std::string& id,
                 esdb::Result<esdb::LogAppendResult> r) {
  PendingGroups::Group done;
  bool answer = false;
  esdb::Status error;
  {
    std::lock_guard<std::mutex> lock(table->mu);
    auto it = table->groups.find(id);
    if (it != table->groups.end()) {
      PendingGroups::Group& g = it->second;
      if (g.applied && r.ok() && r->sequence != g.applied_sequence) {
        // The log holds this entry under another sequence than the one this
        // node applied it at: the tail gave this node an entry the log does
        // not hold there. Its outcomes are not the log's: not answered with.
        // (Or the log stored it twice, its deduplication missing a resend:
        // the applier asks the log which.)
        table->suspects.emplace_back(g.applied_sequence, id);
        error = esdb::Status::Unavailable(
            "the log stored this write as entry " + std::to_string(r->sequence) + " but this node applied it as "
            "entry " + std::to_string(g.applied_sequence) + "; resend it with the same event ids to learn its outcome");
        done = std::move(g);
        done.applied = false;
        answer = true;
        table->groups.erase(it);
      } else if (g.applied) {
        // Applied here already, so it is in the log, whatever the publisher
        // last heard: answer with the outcomes.
        done = std::move(g);
        answer = true;
        table->groups.erase(it);
      } else if (r.ok()) {
        g.acked = true;
        g.acked_sequence = r->sequence;
        g.acked_at = std::chrono::steady_clock::now();
      } else {
        error = r.status();
        done = std::move(g);
        answer = true;
        table->groups.erase(it);
      }
    }
  }
  if (answer) {
    if (done.applied) Answer(done.requests, &done.statuses, &done.results, esdb::Status::OK());
    else Answer(done.requests, nullptr, nullptr, error);
  }
  std::lock_guard<std::mutex> lock(table->mu);
  --table->inflight;
  table->cv.notify_all();
}

}  // namespace

std::string EncodeLogPosition(const LogPosition& p) {
  std::string v(1, '\x03');
  PutFixed64BE(&v, p.sequence);
  v += p.hash;
  v += p.digest;
  PutString(&v, p.entry_id);
  EncodeLeaseState(p.lease, &v);
  PutFixed64BE(&v, p.verified_sequence);
  v += p.verified_hash;
  return v;
}

bool DecodeLogPosition(std::string_view value, LogPosition* p) {
  RecordReader r(value);
  uint8_t format = 0;
  uint64_t seq = 0, verified = 0;
  std::string_view hash, digest, id, verified_hash;
  if (!r.GetU8(&format) || format < 1 || format > 3 || !r.GetU64(&seq) || !r.GetBytes(32, &hash) ||
      !r.GetBytes(32, &digest) || !r.GetString(&id)) {
    return false;
  }
  p->lease = esdb::LeaderLeaseState{};
  if (format >= 2 && !DecodeLeaseState(r, &p->lease)) return false;
  if (format >= 3 && (!r.GetU64(&verified) || !r.GetBytes(32, &verified_hash) || verified > seq)) return false;
  if (!r.done()) return false;
  p->sequence = seq;
  p->hash.assign(hash);
  p->digest.assign(digest);
  p->entry_id.assign(id);
  p->verified_sequence = verified;
  if (format >= 3) p->verified_hash.assign(verified_hash);
  else p->verified_hash.assign(32, '\0');  // the empty log's: re-reads start at entry 1
  return true;
}

// ---- open and close --------------------------------------------------------

esdb::Status StoreCore::OpenCluster(const std::string& node) {
  cluster_ = std::make_unique<ClusterState>();
  ClusterState& c = *cluster_;
  // Entry ids are "<node>-<incarnation>.<random tag>-<counter>" in printable ASCII.
  c.lease_node = node;
  c.node = node.empty() ? "node" : node.substr(0, 64);
  for (char& ch : c.node) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '_' ||
                    ch == '.' || ch == '-';
    if (!ok) ch = '_';
  }
  // This start's number, for the ids of the entries it proposes.
  esdb::Result<std::string> inc = storage_->Get(keys::Incarnation());
  if (inc.ok() && inc->size() == 8) {
    c.incarnation = DecodeFixed64BE(inc->data()) + 1;
  } else if (!inc.ok() && inc.status().code() != esdb::Code::kNotFound) {
    return inc.status();
  } else {
    c.incarnation = 1;
  }
  esdb::StorageBatch b;
  std::string v;
  PutFixed64BE(&v, c.incarnation);
  // Two nodes given the same name by mistake would otherwise propose the
  // same ids, and the log would drop one's entries as the other's
  // duplicates: a random tag keeps ids apart (an id, not a decision).
  {
    char tag[16];
    std::snprintf(tag, sizeof tag, ".%08x", static_cast<unsigned>(std::random_device{}()));
    c.incarnation_tag = std::to_string(c.incarnation) + tag;
  }
  b.Put(keys::Incarnation(), v);
  esdb::Status s = storage_->Write(b, esdb::StorageWriteOptions{true});
  if (!s.ok()) return s;

  esdb::Result<std::string> stored = storage_->Get(keys::LogApplied());
  if (stored.ok()) {
    if (!DecodeLogPosition(*stored, &c.applied)) {
      return esdb::Status::Corruption("the stored log position of this node is malformed");
    }
  } else if (stored.status().code() != esdb::Code::kNotFound) {
    return stored.status();
  } else {
    // Nothing applied yet. A store that already holds events written in
    // single-node mode cannot join a log: its positions are not the log's.
    if (next_position_.load() > 0) {
      return esdb::Status::FailedPrecondition(
          "this node's data holds " + std::to_string(next_position_.load()) +
          " events written in single-node mode; cluster mode needs a node whose data comes from the log only "
          "(start it with an empty data directory)");
    }
    c.applied.hash.assign(32, '\0');
    c.applied.digest.assign(32, '\0');
    c.applied.verified_hash.assign(32, '\0');
  }
  esdb::Result<uint64_t> last = log_->LastSequence();
  if (!last.ok()) return esdb::Status::Unavailable("cannot ask the log where it ends: " + last.status().message());
  const uint64_t applied = c.applied.sequence;
  if (*last < applied) {
    return esdb::Status::FailedPrecondition(
        "refusing to serve: this node applied the log up to entry " + std::to_string(applied) +
        " but the log ends at entry " + std::to_string(*last) +
        ": the log lost entries this node had applied (restore the log, or empty this node's data directory so "
        "that it rebuilds from the log)");
  }
  if (applied > 0) {
    esdb::Result<esdb::LogEntry> e = log_->Get(applied);
    if (!e.ok() && e.status().code() != esdb::Code::kNotFound) {
      return esdb::Status::Unavailable("cannot read log entry " + std::to_string(applied) + ": " + e.status().message());
    }
    if (!e.ok() || EntryDigest(*e) != c.applied.digest) {
      return esdb::Status::FailedPrecondition(
          "refusing to serve: log entry " + std::to_string(applied) +
          (e.ok() ? " is not the entry this node applied under that number"
                  : " is no longer in the log, though this node applied it") +
          ": the log is not the one this node's data comes from (restore the log, or empty this node's data "
          "directory so that it rebuilds from the log)");
    }
  }
  c.open_target = *last;
  c.applied_sequence.store(applied);
  {
    std::lock_guard<std::mutex> lock(c.lease_mu);
    c.lease = c.applied.lease;
    c.lease.sequence = applied;
  }
  c.caught_up = applied >= c.open_target;
  Log(2, "cluster mode: node " + c.node + " incarnation " + c.incarnation_tag + ", applied up to entry " +
             std::to_string(applied) + " (log hash " + Hex(c.applied.hash).substr(0, 16) + "...), the log ends at " +
             std::to_string(*last));

  c.applier = std::thread([this] { ApplierLoop(); });
  esdb::Result<std::unique_ptr<esdb::LogTail>> tail = log_->Tail(applied + 1, [this](esdb::LogEntry e) {
    ClusterState& cs = *cluster_;
    std::unique_lock<std::mutex> lock(cs.apply_mu);
    cs.apply_cv.wait(lock, [&] { return cs.apply_stop || cs.apply_queue.size() < kMaxApplyQueue; });
    if (cs.apply_stop) return;
    cs.apply_queue.push_back(std::move(e));
    cs.apply_cv.notify_all();
  });
  if (!tail.ok()) return tail.status();  // Close() stops the applier
  c.tail = std::move(*tail);
  c.proposer = std::thread([this] { ProposerLoop(); });
  c.checkpointer = std::thread([this] { HousekeepingLoop(); });
  return esdb::Status::OK();
}

void StoreCore::CloseCluster() {
  ClusterState& c = *cluster_;
  {
    std::lock_guard<std::mutex> lock(c.checkpoint_mu);
    c.checkpoint_stop = true;
  }
  c.checkpoint_cv.notify_all();
  if (c.checkpointer.joinable()) c.checkpointer.join();
  {
    std::lock_guard<std::mutex> lock(c.pending->mu);
    c.pending->stop_proposing = true;
  }
  c.pending->cv.notify_all();
  if (c.proposer.joinable()) c.proposer.join();  // it saw stopping_ and failed what was queued
  {
    std::lock_guard<std::mutex> lock(c.apply_mu);
    c.apply_stop = true;
  }
  c.apply_cv.notify_all();
  c.tail.reset();  // no handler runs after this
  if (c.applier.joinable()) c.applier.join();
  // The log still holds callbacks of this library for entries in flight:
  // wait for them (bounded), then answer whatever is left.
  std::unordered_map<std::string, PendingGroups::Group> left;
  {
    std::unique_lock<std::mutex> lock(c.pending->mu);
    c.pending->closed = true;
    if (!c.pending->cv.wait_for(lock, std::chrono::seconds(5), [&] { return c.pending->inflight == 0; })) {
      Log(4, std::to_string(c.pending->inflight) + " log appends still unanswered as the store closes");
    }
    left.swap(c.pending->groups);
  }
  for (auto& [id, g] : left) {
    if (g.applied) {
      Answer(g.requests, &g.statuses, &g.results, esdb::Status::OK());
    } else {
      Answer(g.requests, nullptr, nullptr,
             esdb::Status::Unavailable("the store stopped before this write was applied here; it may or may not be "
                                       "in the log (resend it with the same event ids to find out)"));
    }
  }
}

esdb::Status StoreCore::WaitCaughtUp(std::chrono::milliseconds timeout) {
  if (!cluster_) return esdb::Status::OK();
  ClusterState& c = *cluster_;
  std::unique_lock<std::mutex> lock(c.apply_mu);
  c.apply_cv.wait_for(lock, timeout, [&] { return c.caught_up || c.halted || c.apply_stop; });
  if (c.halted) return c.halt_status;
  if (c.caught_up) return esdb::Status::OK();
  if (c.apply_stop) return Cancelled();
  return esdb::Status::Timeout("applied " + std::to_string(c.applied_sequence.load()) + " of " +
                               std::to_string(c.open_target) + " log entries");
}

// ---- proposing ---------------------------------------------------------------

void StoreCore::ProposerLoop() {
  ClusterState& c = *cluster_;
  const size_t max_inflight = options_.max_inflight_groups;
  std::vector<std::unique_ptr<Request>> group;
  for (;;) {
    {
      // At most max_inflight_groups entries published and not yet answered
      // (acknowledged and applied here): the requests that arrive meanwhile
      // make the next group bigger.
      std::unique_lock<std::mutex> lock(c.pending->mu);
      c.pending->cv.wait(lock, [&] {
        return (c.pending->inflight < max_inflight && c.pending->groups.size() < max_inflight) ||
               c.pending->stop_proposing;
      });
    }
    size_t limit = std::min(options_.max_group_bytes, log_->MaxEntryBytes());
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return !queue_.empty() || stopping_; });
      if (stopping_) {
        // Not published: answered as not done.
        std::deque<std::unique_ptr<Request>> left;
        left.swap(queue_);
        lock.unlock();
        for (auto& r : left) group.push_back(std::move(r));
        Answer(group, nullptr, nullptr, Cancelled());
        return;
      }
      size_t bytes = 16;
      while (!queue_.empty()) {
        const Request& r = *queue_.front();
        const size_t b = ProposedBytes(r, r.events.size());
        if (!group.empty() && bytes + b > limit) break;
        // A scavenge is the only request of its entry (group_codec.h).
        const bool scavenge = r.kind == Request::Kind::kScavenge;
        if (!group.empty() && scavenge) break;
        bytes += b;
        group.push_back(std::move(queue_.front()));
        queue_.pop_front();
        if (scavenge) break;
      }
    }
    // One request too large for any entry fails alone (an append is never split).
    if (group.size() == 1 && ProposedBytes(*group[0], group[0]->events.size()) + 16 > limit) {
      Answer(group, nullptr, nullptr,
             esdb::Status::InvalidArgument("the write to " + Quote(group[0]->stream) + " needs " +
                                           std::to_string(ProposedBytes(*group[0], group[0]->events.size())) +
                                           " bytes in the log; one log entry holds at most " + std::to_string(limit) +
                                           " (raise max_payload of the NATS servers)"));
      group.clear();
      continue;
    }
    std::string data;
    EncodeGroupHeader(NowUs(), static_cast<uint32_t>(group.size()), &data);
    for (auto& rp : group) {
      Request& r = *rp;
      switch (r.kind) {
        case Request::Kind::kAppend:
          r.generated.assign(r.events.size(), 0);
          for (size_t i = 0; i < r.events.size(); ++i) {
            std::string& raw = r.raw_ids[i];
            if (!raw.empty()) continue;
            raw = NewRandomEventId(rng_);
            r.generated[i] = 1;
          }
          EncodeGroupAppend(r.stream, r.expected, r.events, r.raw_ids, r.generated, &data);
          break;
        case Request::Kind::kDelete: EncodeGroupDelete(r.stream, r.expected, r.hard, &data); break;
        case Request::Kind::kSetMetadata: EncodeGroupMetadata(r.stream, *r.metadata, &data); break;
        case Request::Kind::kLease: EncodeGroupLease(*r.lease, &data); break;
        case Request::Kind::kCheckpoint: EncodeGroupCheckpoint(*r.checkpoint, &data); break;
        case Request::Kind::kScavenge: EncodeGroupScavenge(*r.scavenge, &data); break;
      }
    }
    std::string id = c.node + "-" + c.incarnation_tag + "-" + std::to_string(++c.counter);
    {
      std::lock_guard<std::mutex> lock(c.pending->mu);
      PendingGroups::Group& g = c.pending->groups[id];
      g.requests = std::move(group);
      ++c.pending->inflight;
    }
    group.clear();
    c.proposed.fetch_add(1);
    log_->Append(id, std::move(data), [table = c.pending, id](esdb::Result<esdb::LogAppendResult> r) {
      OnPublished(table, id, std::move(r));
    });
  }
}

// ---- applying ------------------------------------------------------------------

void StoreCore::HaltApplier(const esdb::Status& why) {
  ClusterState& c = *cluster_;
  {
    std::lock_guard<std::mutex> lock(c.apply_mu);
    if (c.halted) return;
    c.halted = true;
    c.halt_status = why;
    c.refusing.store(true);
  }
  c.apply_cv.notify_all();
  Log(4, "stopped applying the log: " + why.ToString());
  if (hooks_.apply_failed) hooks_.apply_failed(why);
}

void StoreCore::ApplierLoop() {
  ClusterState& c = *cluster_;
  for (;;) {
    esdb::LogEntry e;
    {
      std::unique_lock<std::mutex> lock(c.apply_mu);
      c.apply_cv.wait(lock, [&] { return c.apply_stop || !c.apply_queue.empty(); });
      if (c.apply_stop) return;
      e = std::move(c.apply_queue.front());
      c.apply_queue.pop_front();
      c.apply_cv.notify_all();  // room for the tail
      if (c.halted) continue;
    }
    if (e.sequence <= c.applied.sequence) continue;  // delivered twice
    if (e.sequence != c.applied.sequence + 1) {
      HaltApplier(esdb::Status::Internal("the log delivered entry " + std::to_string(e.sequence) + " after entry " +
                                         std::to_string(c.applied.sequence) + "; never applying past a hole"));
      continue;
    }
    ApplyEntry(e);
  }
}

void StoreCore::ApplyEntry(esdb::LogEntry& e) {
  ClusterState& c = *cluster_;
  LogPosition next;
  next.sequence = e.sequence;
  next.digest = EntryDigest(e);
  next.hash = Sha256({c.applied.hash, next.digest});
  next.entry_id = e.id;
  next.lease = c.applied.lease;  // ProcessGroup() decides lease claims against it
  next.verified_sequence = c.applied.verified_sequence;
  next.verified_hash = c.applied.verified_hash;

  // Applied before under another sequence, at most entry_id_window entries
  // ago (a resend that the log's own deduplication missed): this entry
  // changes nothing. Older ids do not count, whether PruneEntryIds() has
  // deleted them yet or not, so every node decides alike.
  bool duplicate = false;
  if (!e.id.empty()) {
    esdb::Result<std::string> seen = storage_->Get(keys::LogEntryId(e.id));
    if (seen.ok()) {
      RecordReader r(*seen);
      uint64_t first = 0;
      duplicate = !r.GetU64(&first) || e.sequence - first <= options_.entry_id_window;
    } else if (seen.status().code() != esdb::Code::kNotFound) {
      return HaltApplier(seen.status());
    }
  }
  std::vector<std::unique_ptr<Request>> requests;
  int64_t created_us = 0;
  esdb::Status malformed;
  if (duplicate) {
    c.duplicate_entries.fetch_add(1);
    next.entry_id.clear();  // keep the first sequence under its id
    Log(3, "log entry " + std::to_string(e.sequence) + " repeats entry id " + e.id + ", applied before; skipped");
  } else {
    esdb::Result<GroupRecord> rec = DecodeGroup(e.data);
    if (!rec.ok()) {
      // The same bytes fail the same way on every node: skipped everywhere.
      malformed = rec.status();
      c.malformed_entries.fetch_add(1);
      Log(4, "log entry " + std::to_string(e.sequence) + " (id " + e.id + ") skipped: " + malformed.message());
    } else {
      created_us = rec->created_us;
      requests.reserve(rec->requests.size());
      for (GroupRequest& q : rec->requests) {
        auto r = std::make_unique<Request>();
        switch (q.kind) {
          case GroupRequest::Kind::kAppend: r->kind = Request::Kind::kAppend; break;
          case GroupRequest::Kind::kDelete: r->kind = Request::Kind::kDelete; break;
          case GroupRequest::Kind::kSetMetadata: r->kind = Request::Kind::kSetMetadata; break;
          case GroupRequest::Kind::kLease: r->kind = Request::Kind::kLease; break;
          case GroupRequest::Kind::kCheckpoint: r->kind = Request::Kind::kCheckpoint; break;
          case GroupRequest::Kind::kScavenge: r->kind = Request::Kind::kScavenge; break;
        }
        r->stream = std::move(q.stream);
        r->expected = q.expected;
        r->events = std::move(q.events);
        r->raw_ids = std::move(q.raw_ids);
        r->generated = std::move(q.generated);
        r->hard = q.hard;
        r->metadata = std::move(q.metadata);
        r->lease = std::move(q.lease);
        r->checkpoint = std::move(q.checkpoint);
        r->scavenge = std::move(q.scavenge);
        for (const auto& ev : r->events) r->bytes += EventBytes(ev);
        requests.push_back(std::move(r));
      }
    }
  }
  // This node's own group: its callers' trace context goes onto the bus events.
  if (!requests.empty()) {
    std::lock_guard<std::mutex> lock(c.pending->mu);
    auto it = c.pending->groups.find(e.id);
    if (it != c.pending->groups.end() && it->second.requests.size() == requests.size()) {
      for (size_t i = 0; i < requests.size(); ++i) requests[i]->context = it->second.requests[i]->context;
    }
  }
  // The log stored one of this node's entries elsewhere than it was
  // applied (OnPublished), or delivers one here that it acknowledged under
  // another sequence and does not hold here.
  {
    std::string diverged;
    uint64_t acked_at = 0;
    {
      std::lock_guard<std::mutex> lock(c.pending->mu);
      auto it = c.pending->groups.find(e.id);
      if (it != c.pending->groups.end() && it->second.acked) acked_at = it->second.acked_sequence;
    }
    if (acked_at != 0 && acked_at != e.sequence) {
      esdb::Result<esdb::LogEntry> held = log_->Get(e.sequence);
      if (held.ok() && held->id != e.id) {
        diverged = "the log delivered this node's entry " + e.id + " as entry " + std::to_string(e.sequence) +
                   ", which the log holds another entry under (it acknowledged this one as entry " +
                   std::to_string(acked_at) + ")";
      }
    }
    if (!diverged.empty()) {
      Diverged("this node has diverged from the log: " + diverged +
               ". It stops serving and rebuilds its data from the log at its next start");
      return;
    }
  }
  // Other nodes' checkpoints: compared with this node's hash before the
  // entry is applied (they name earlier entries).
  bool data = requests.empty();  // a skipped entry moves the log like data
  for (const auto& r : requests) {
    if (r->kind != Request::Kind::kCheckpoint) {
      data = true;
    } else if (r->checkpoint->node != c.node && !CheckCheckpoint(*r->checkpoint, &next)) {
      return;  // diverged: halted, nothing applied
    }
  }
  bool committed = false;
  std::vector<Outcome> outcomes = ProcessGroup(requests, created_us, &next, &committed);
  if (committed) {
    c.applied = next;
    c.applied_sequence.store(next.sequence);
    c.applied_entries.fetch_add(1);
    {
      std::lock_guard<std::mutex> lock(c.ring_mu);
      c.ring.push_back({next.sequence, next.digest, next.hash});
      while (c.ring.size() > kHashRingSize) c.ring.pop_front();
      if (data) c.last_data_sequence = next.sequence;
    }
    std::lock_guard<std::mutex> lock(c.lease_mu);
    c.lease = next.lease;
    c.lease.sequence = next.sequence;
  }
  // Answer this node's callers: now if the log acknowledged the entry,
  // otherwise when it does.
  if (!duplicate) {
    PendingGroups::Group done;
    bool answer = false;
    {
      std::lock_guard<std::mutex> lock(c.pending->mu);
      auto it = c.pending->groups.find(e.id);
      if (it != c.pending->groups.end()) {
        PendingGroups::Group& g = it->second;
        const size_t n = g.requests.size();
        g.statuses.assign(n, esdb::Status::OK());
        g.results.assign(n, esdb::AppendResult{});
        for (size_t i = 0; i < n; ++i) {
          if (!malformed.ok() || outcomes.size() != n) {
            g.statuses[i] = esdb::Status::Internal("this node's log entry " + e.id + " could not be applied: " +
                                                   (malformed.ok() ? "request count differs" : malformed.message()));
          } else {
            g.statuses[i] = outcomes[i].status;
            g.results[i] = outcomes[i].result;
            g.requests[i]->lease_outcome = outcomes[i].lease;
            g.requests[i]->scavenge_result = outcomes[i].scavenge;
          }
        }
        g.applied = true;
        g.applied_sequence = e.sequence;
        if (g.acked) {
          done = std::move(g);
          answer = true;
          c.pending->groups.erase(it);
        }
      }
    }
    if (answer) {
      c.pending->cv.notify_all();  // room for the proposer
      Answer(done.requests, &done.statuses, &done.results, esdb::Status::OK());
    }
  }
  if (!committed) {
    return HaltApplier(esdb::Status::IOError("log entry " + std::to_string(e.sequence) +
                                             " could not be applied on this node; it stops serving"));
  }
  if (next.sequence >= c.open_target) {
    std::lock_guard<std::mutex> lock(c.apply_mu);
    if (!c.caught_up) {
      c.caught_up = true;
      c.apply_cv.notify_all();
    }
  }
}

// ---- checkpoints: finding a divergence ---------------------------------------------

void StoreCore::PruneEntryIds() {
  ClusterState& c = *cluster_;
  const uint64_t window = options_.entry_id_window;
  const uint64_t applied = c.applied_sequence.load();
  if (!c.prune_sweeping) {
    // A sweep over every 'g' key each time the window moved by a quarter of
    // itself: at most 1.25 windows of ids are kept, and each applied entry
    // costs about five keys looked at.
    if (applied <= window || applied - window < c.prune_below + window / 4 + 1) return;
    c.prune_sweeping = true;
    c.prune_below = applied - window;
    c.prune_cursor.assign(1, keys::kLogEntryId);
  }
  esdb::Result<std::unique_ptr<esdb::StorageIterator>> it = storage_->NewIterator(esdb::StorageReadOptions{});
  if (!it.ok()) return;  // tried again at the next round
  esdb::StorageBatch batch;
  size_t looked = 0, deleted = 0;
  bool end = true;
  for ((*it)->Seek(c.prune_cursor); (*it)->Valid(); (*it)->Next()) {
    const std::string_view key = (*it)->key();
    if (key.empty() || key[0] != keys::kLogEntryId) break;
    if (key == c.prune_cursor) continue;  // done in the last round
    if (++looked > 10000) {
      end = false;
      break;
    }
    RecordReader r((*it)->value());
    uint64_t first = 0;
    if (r.GetU64(&first) && first < c.prune_below) {
      batch.Delete(std::string(key));
      ++deleted;
    }
    c.prune_cursor.assign(key);
  }
  if (!(*it)->status().ok()) return;
  it->reset();
  if (deleted > 0) {
    esdb::StorageWriteOptions o;
    o.sync = false;  // what a crash keeps, the next sweep finds again
    if (!storage_->Write(batch, o).ok()) return;
    c.entry_ids_pruned.fetch_add(deleted);
  }
  if (end) c.prune_sweeping = false;
}

void StoreCore::HousekeepingLoop() {
  ClusterState& c = *cluster_;
  using Clock = std::chrono::steady_clock;
  uint64_t proposed_after = 0;  // the data entry the last checkpoint followed
  Clock::time_point next_checkpoint = Clock::now() + std::chrono::milliseconds(options_.checkpoint_interval_ms);
  std::unique_lock<std::mutex> lock(c.checkpoint_mu);
  while (!c.checkpoint_stop) {
    c.checkpoint_cv.wait_for(lock, std::chrono::milliseconds(200), [&] { return c.checkpoint_stop; });
    if (c.checkpoint_stop) break;
    ExpireUnapplied();
    CheckSuspects();
    PruneEntryIds();
    if (c.compact_pending.exchange(false)) {
      // After a scavenge entry removed events (node-local, like a
      // single-node scavenge's compaction; a failure is only logged).
      lock.unlock();
      const esdb::Status s = storage_->Compact(std::nullopt, std::nullopt);
      if (!s.ok()) Log(3, "compaction after a scavenge failed: " + s.ToString());
      lock.lock();
      if (c.checkpoint_stop) break;
    }
    if (options_.checkpoint_interval_ms == 0 || Clock::now() < next_checkpoint) continue;
    next_checkpoint = Clock::now() + std::chrono::milliseconds(options_.checkpoint_interval_ms);
    LogCheckpoint cp;
    {
      std::lock_guard<std::mutex> ring(c.ring_mu);
      // Only while the log moves: checkpoints alone do not call for more.
      if (c.ring.empty() || c.last_data_sequence <= proposed_after) continue;
      proposed_after = c.last_data_sequence;
      cp.sequence = c.ring.back().sequence;
      cp.hash = c.ring.back().hash;
    }
    cp.node = c.node;
    auto r = std::make_unique<Request>();
    r->kind = Request::Kind::kCheckpoint;
    r->bytes = 64;
    r->checkpoint = std::move(cp);
    r->status_done = [](esdb::Status) {};  // the comparison is the others'
    if (Enqueue(r).ok()) c.checkpoints_proposed.fetch_add(1);
  }
}

void StoreCore::CheckSuspects() {
  ClusterState& c = *cluster_;
  std::vector<std::pair<uint64_t, std::string>> suspects;
  {
    std::lock_guard<std::mutex> lock(c.pending->mu);
    suspects.swap(c.pending->suspects);
  }
  for (size_t i = 0; i < suspects.size(); ++i) {
    const auto& [seq, id] = suspects[i];
    esdb::Result<esdb::LogEntry> held = log_->Get(seq);
    if (held.ok() && held->id == id) continue;  // the log stored it twice; this node applied the first
    if (!held.ok() && held.status().code() != esdb::Code::kNotFound) {
      // Cannot tell now: asked again next round.
      std::lock_guard<std::mutex> lock(c.pending->mu);
      c.pending->suspects.insert(c.pending->suspects.end(), suspects.begin() + static_cast<std::ptrdiff_t>(i),
                                 suspects.end());
      return;
    }
    return Diverged("this node has diverged from the log: it applied its own entry " + id + " as entry " +
                    std::to_string(seq) + ", under which the log holds " +
                    (held.ok() ? "another entry" : "no entry") +
                    ". It stops serving and rebuilds its data from the log at its next start");
  }
}

void StoreCore::ExpireUnapplied() {
  ClusterState& c = *cluster_;
  const auto now = std::chrono::steady_clock::now();
  const auto limit = std::chrono::milliseconds(options_.apply_timeout_ms);
  std::vector<PendingGroups::Group> expired;
  {
    std::lock_guard<std::mutex> lock(c.pending->mu);
    for (auto it = c.pending->groups.begin(); it != c.pending->groups.end();) {
      PendingGroups::Group& g = it->second;
      if (g.acked && !g.applied && now - g.acked_at >= limit) {
        expired.push_back(std::move(g));
        it = c.pending->groups.erase(it);
      } else {
        ++it;
      }
    }
  }
  if (expired.empty()) return;
  c.pending->cv.notify_all();  // room for the proposer
  c.apply_timeouts.fetch_add(expired.size());
  for (PendingGroups::Group& g : expired) {
    Answer(g.requests, nullptr, nullptr,
           esdb::Status::Unavailable("the log stored this write as entry " + std::to_string(g.acked_sequence) +
                                     " but this node has not applied it within apply_timeout_ms (" +
                                     std::to_string(options_.apply_timeout_ms) +
                                     " ms; it has applied up to entry " + std::to_string(c.applied_sequence.load()) +
                                     "): its outcome is decided in the log; read it back, or resend it with the "
                                     "same event ids to learn it"));
  }
}

bool StoreCore::CheckCheckpoint(const LogCheckpoint& cp, LogPosition* next) {
  ClusterState& c = *cluster_;
  std::string mine;
  {
    std::lock_guard<std::mutex> lock(c.ring_mu);
    if (!c.ring.empty() && cp.sequence >= c.ring.front().sequence && cp.sequence <= c.ring.back().sequence) {
      mine = c.ring[cp.sequence - c.ring.front().sequence].hash;
    }
  }
  if (mine.empty() && cp.sequence == c.applied.verified_sequence) mine = c.applied.verified_hash;
  if (mine.empty()) {
    // Before this node's start or beyond its memory: nothing to compare with.
    c.checkpoints_unverifiable.fetch_add(1);
    return true;
  }
  if (mine == cp.hash) {
    c.checkpoints_matched.fetch_add(1);
    if (cp.sequence > next->verified_sequence) {
      next->verified_sequence = cp.sequence;
      next->verified_hash = mine;
    }
    return true;
  }
  // One of the two diverged. Re-read the log from the last point this
  // node's hash was confirmed up to what it applied, and chain it again.
  c.checkpoints_differing.fetch_add(1);
  c.log_rereads.fetch_add(1);
  const uint64_t from = c.applied.verified_sequence, to = c.applied.sequence;
  Log(3, "node " + cp.node + "'s log hash after entry " + std::to_string(cp.sequence) + " differs from this node's; "
             "re-reading log entries " + std::to_string(from + 1) + "-" + std::to_string(to) + " to find out which diverged");
  std::string hash = c.applied.verified_hash;
  uint64_t first_differing = 0;
  for (uint64_t seq = from + 1; seq <= to; ++seq) {
    if ((seq & 255) == 0) {
      std::lock_guard<std::mutex> lock(c.apply_mu);
      if (c.apply_stop) return false;
    }
    esdb::Result<esdb::LogEntry> e = log_->Get(seq);
    if (!e.ok()) {
      if (e.status().code() == esdb::Code::kNotFound) {
        Diverged("log entry " + std::to_string(seq) + ", which this node applied, is no longer in the log");
        return false;
      }
      // Cannot tell now; the next differing checkpoint asks again.
      Log(4, "could not re-read the log to check node " + cp.node + "'s checkpoint: " + e.status().ToString());
      return true;
    }
    const std::string digest = EntryDigest(*e);
    if (first_differing == 0) {
      std::lock_guard<std::mutex> lock(c.ring_mu);
      if (!c.ring.empty() && seq >= c.ring.front().sequence && seq <= c.ring.back().sequence &&
          c.ring[seq - c.ring.front().sequence].digest != digest) {
        first_differing = seq;
      }
    }
    hash = Sha256({hash, digest});
  }
  if (hash == c.applied.hash) {
    Log(4, "node " + cp.node + " has diverged from the log: its hash after entry " + std::to_string(cp.sequence) +
               " is not the log's, which re-reading the log up to entry " + std::to_string(to) + " confirmed here");
    next->verified_sequence = to;
    next->verified_hash = hash;
    return true;
  }
  Diverged("this node has diverged from the log: its running hash after entry " + std::to_string(to) +
           " is not the one the log gives (node " + cp.node + "'s checkpoint after entry " +
           std::to_string(cp.sequence) + " disagreed; re-read from entry " + std::to_string(from + 1) + "); " +
           (first_differing > 0 ? "it applied entry " + std::to_string(first_differing) + " differently from the log"
                                : "it applied an entry differently from the log before this start") +
           ". It stops serving and rebuilds its data from the log at its next start");
  return false;
}

void StoreCore::Diverged(const std::string& why) {
  esdb::StorageBatch b;
  b.Put(keys::LogRebuild(), why);
  esdb::Status s = storage_->Write(b, esdb::StorageWriteOptions{true});
  if (!s.ok()) {
    return HaltApplier(esdb::Status::FailedPrecondition(
        why + "; recording that for the next start failed (" + s.ToString() +
        "): empty this node's data directory so that it rebuilds from the log"));
  }
  HaltApplier(esdb::Status::FailedPrecondition(why));
}

esdb::Status StoreCore::RebuildIfDiverged() {
  esdb::Result<std::string> why = storage_->Get(keys::LogRebuild());
  if (!why.ok()) return why.status().code() == esdb::Code::kNotFound ? esdb::Status::OK() : why.status();
  Log(4, "rebuilding this node's data from the log: " + *why);
  const std::string keep = keys::Incarnation(), marker = keys::LogRebuild();
  uint64_t deleted = 0;
  for (;;) {
    // At most 10000 deletes per batch; the marker goes last, so a crash
    // in between resumes the rebuild.
    esdb::Result<std::unique_ptr<esdb::StorageIterator>> it = storage_->NewIterator(esdb::StorageReadOptions{});
    if (!it.ok()) return it.status();
    esdb::StorageBatch b;
    size_t n = 0;
    for ((*it)->SeekToFirst(); (*it)->Valid() && n < 10000; (*it)->Next()) {
      if ((*it)->key() == keep || (*it)->key() == marker) continue;
      b.Delete(std::string((*it)->key()));
      ++n;
    }
    if (!(*it)->status().ok()) return (*it)->status();
    it->reset();
    if (n == 0) break;
    esdb::Status s = storage_->Write(b, esdb::StorageWriteOptions{false});
    if (!s.ok()) return s;
    deleted += n;
  }
  esdb::StorageBatch done;
  done.Delete(marker);
  esdb::Status s = storage_->Write(done, esdb::StorageWriteOptions{true});
  if (!s.ok()) return s;
  Log(3, "deleted " + std::to_string(deleted) + " keys; re-applying the log from entry 1");
  return esdb::Status::OK();
}

// ---- the leader lease ------------------------------------------------------------

esdb::Result<esdb::LeaderLeaseOutcome> StoreCore::ProposeLease(const esdb::LeaderLeaseClaim& claim) {
  if (!cluster_) return esdb::Status::FailedPrecondition("the leader lease exists in cluster mode only");
  esdb::Status s = ValidateLeaseClaim(claim);
  if (!s.ok()) return s;
  auto r = std::make_unique<Request>();
  r->kind = Request::Kind::kLease;
  r->lease = claim;
  r->bytes = claim.node.size() + claim.http.size();
  std::promise<esdb::Result<esdb::LeaderLeaseOutcome>> promise;
  auto future = promise.get_future();
  r->lease_done = [&promise](esdb::Result<esdb::LeaderLeaseOutcome> o) { promise.set_value(std::move(o)); };
  s = Enqueue(r);
  if (!s.ok()) return s;
  return future.get();
}

esdb::Result<esdb::LeaderLeaseState> StoreCore::CurrentLease() {
  if (!cluster_) return esdb::Status::FailedPrecondition("the leader lease exists in cluster mode only");
  std::lock_guard<std::mutex> lock(cluster_->lease_mu);
  return cluster_->lease;
}

nlohmann::json StoreCore::ClusterStats() const {
  if (!cluster_) return nullptr;
  const ClusterState& c = *cluster_;
  size_t pending = 0;
  {
    std::lock_guard<std::mutex> lock(c.pending->mu);
    pending = c.pending->groups.size();
  }
  // The running hash after the last entry applied (hex), to compare nodes.
  std::string hash;
  uint64_t hash_sequence = 0;
  {
    std::lock_guard<std::mutex> lock(c.ring_mu);
    if (!c.ring.empty()) {
      hash = Hex(c.ring.back().hash);
      hash_sequence = c.ring.back().sequence;
    }
  }
  return {{"node", c.node},
          {"incarnation", c.incarnation_tag},
          {"applied_sequence", c.applied_sequence.load()},
          {"open_target", c.open_target},
          {"proposed_groups", c.proposed.load()},
          {"applied_entries", c.applied_entries.load()},
          {"duplicate_entries", c.duplicate_entries.load()},
          {"entry_ids_pruned", c.entry_ids_pruned.load()},
          {"malformed_entries", c.malformed_entries.load()},
          {"checkpoints_proposed", c.checkpoints_proposed.load()},
          {"checkpoints_matched", c.checkpoints_matched.load()},
          {"checkpoints_differing", c.checkpoints_differing.load()},
          {"checkpoints_unverifiable", c.checkpoints_unverifiable.load()},
          {"log_rereads", c.log_rereads.load()},
          {"apply_timeouts", c.apply_timeouts.load()},
          {"pending_groups", pending},
          {"log_hash", hash},
          {"log_hash_sequence", hash_sequence}};
}

}  // namespace esdb_store
