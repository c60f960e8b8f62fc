#include "nats_log.h"

#include <algorithm>

#include <spdlog/logger.h>

#include "nats_tail.h"

namespace esdb_log {
namespace {

using Clock = std::chrono::steady_clock;

// What the last nats.c call on this thread said, for error messages.
std::string NatsError(natsStatus s, jsErrCode jerr = static_cast<jsErrCode>(0)) {
  std::string text = natsStatus_GetText(s);
  natsStatus last = NATS_OK;
  const char* detail = nats_GetLastError(&last);
  if (detail != nullptr && *detail != '\0' && text != detail) text += ": " + std::string(detail);
  if (jerr != 0) text += " (JetStream error " + std::to_string(static_cast<int>(jerr)) + ")";
  return text;
}

// A publish failure that may pass: no stream leader yet (503, "no
// responders"), the servers out of reach, a timeout.
bool Retryable(natsStatus s, jsErrCode jerr) {
  switch (s) {
    case NATS_NO_RESPONDERS:
    case NATS_TIMEOUT:
    case NATS_NOT_YET_CONNECTED:
    case NATS_CONNECTION_DISCONNECTED:
    case NATS_CONNECTION_CLOSED:
    case NATS_STALE_CONNECTION:
    case NATS_NO_SERVER:
    case NATS_IO_ERROR:
    case NATS_SLOW_CONSUMER:
      return true;
    case NATS_ERR:
      return jerr == JSClusterNotAvailErr || jerr == JSInsufficientResourcesErr || jerr == JSClusterNoPeersErr ||
             jerr == 0;
    default:
      return false;
  }
}

bool ValidEntryId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (c <= ' ' || c > '~' || c == ':') return false;
  }
  return true;
}

int64_t Ns(uint32_t ms) { return static_cast<int64_t>(ms) * 1000000; }

}  // namespace

NatsLog::NatsLog(LogOptions options, std::string node, std::shared_ptr<spdlog::logger> logger)
    : options_(std::move(options)), node_(std::move(node)), logger_(std::move(logger)) {}

NatsLog::~NatsLog() { Close(); }

void NatsLog::Log(int level, const std::string& message) const {
  if (logger_) logger_->log(static_cast<spdlog::level::level_enum>(level), message);
}

std::string NatsLog::ServerList() const {
  std::string list;
  for (const auto& s : options_.nats.urls) list += (list.empty() ? "" : ", ") + s;
  return list;
}

void NatsLog::OnConnected(natsConnection*, void* closure) {
  auto* self = static_cast<NatsLog*>(closure);
  self->connected_.store(true);
  self->Log(2, "connected to NATS (" + self->ServerList() + ")");
}

void NatsLog::OnDisconnected(natsConnection*, void* closure) {
  auto* self = static_cast<NatsLog*>(closure);
  if (!self->connected_.exchange(false)) return;
  self->disconnects_.fetch_add(1);
  if (!self->closed_.load()) self->Log(3, "disconnected from NATS; reconnecting (" + self->ServerList() + ")");
}

void NatsLog::OnReconnected(natsConnection*, void* closure) {
  auto* self = static_cast<NatsLog*>(closure);
  self->connected_.store(true);
  self->reconnects_.fetch_add(1);
  self->Log(2, "reconnected to NATS");
}

void NatsLog::OnClosed(natsConnection*, void* closure) {
  auto* self = static_cast<NatsLog*>(closure);
  self->connected_.store(false);
  std::lock_guard<std::mutex> lock(self->closed_cb_mu_);
  self->closed_cb_ = true;
  self->closed_cb_cv_.notify_all();
}

esdb::Status NatsLog::Connect() {
  std::unique_lock<std::shared_mutex> lock(conn_mu_);
  if (closed_.load()) return esdb::Status::Cancelled("the log is closed");
  if (nc_ != nullptr) return esdb::Status::OK();
  natsStatus s = natsOptions_Create(&nats_options_);
  if (s == NATS_OK) s = esdb_plugin_shared::ApplyNatsServers(options_.nats, nats_options_);
  if (s == NATS_OK) s = natsOptions_SetName(nats_options_, ("esdb-" + node_).c_str());
  if (s == NATS_OK) s = natsOptions_SetMaxReconnect(nats_options_, -1);
  if (s == NATS_OK) s = natsOptions_SetReconnectWait(nats_options_, 250);
  if (s == NATS_OK) s = natsOptions_SetTimeout(nats_options_, 2000);
  if (s == NATS_OK) s = natsOptions_SetRetryOnFailedConnect(nats_options_, true, &NatsLog::OnConnected, this);
  if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(nats_options_, &NatsLog::OnDisconnected, this);
  if (s == NATS_OK) s = natsOptions_SetReconnectedCB(nats_options_, &NatsLog::OnReconnected, this);
  if (s == NATS_OK) s = natsOptions_SetClosedCB(nats_options_, &NatsLog::OnClosed, this);
  if (s != NATS_OK) return esdb::Status::InvalidArgument("log config: field 'servers': " + NatsError(s));
  s = natsConnection_Connect(&nc_, nats_options_);
  if (s == NATS_OK) {
    connected_.store(true);
  } else if (s != NATS_NOT_YET_CONNECTED) {
    nc_ = nullptr;
    return esdb::Status::Unavailable("cannot connect to NATS (" + ServerList() + "): " + NatsError(s));
  }
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options_.publish_timeout_ms;
  s = natsConnection_JetStream(&js_, nc_, &jo);
  if (s != NATS_OK) return esdb::Status::Internal("JetStream context: " + NatsError(s));
  for (int i = 0; i < options_.publishers; ++i) publishers_.emplace_back([this] { PublisherLoop(); });
  return esdb::Status::OK();
}

bool NatsLog::Connected() const {
  std::shared_lock<std::shared_mutex> lock(conn_mu_);
  return nc_ != nullptr && natsConnection_Status(nc_) == NATS_CONN_STATUS_CONNECTED;
}

esdb::Status NatsLog::EnsureStream() {
  std::shared_lock<std::shared_mutex> lock(conn_mu_);
  if (closed_.load() || js_ == nullptr) return esdb::Status::Cancelled("the log is closed");
  if (natsConnection_Status(nc_) != NATS_CONN_STATUS_CONNECTED) {
    return esdb::Status::Unavailable("not connected to NATS (" + ServerList() + ")" + diagnosis_.Why());
  }
  const std::string& name = options_.stream;
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  natsStatus s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &jerr);
  if (s == NATS_NOT_FOUND || jerr == JSStreamNotFoundErr) {
    jsStreamConfig cfg;
    jsStreamConfig_Init(&cfg);
    const char* subjects[] = {options_.subject.c_str()};
    cfg.Name = name.c_str();
    cfg.Subjects = subjects;
    cfg.SubjectsLen = 1;
    cfg.Storage = js_FileStorage;
    cfg.Retention = js_LimitsPolicy;
    cfg.Replicas = options_.replicas;
    cfg.MaxMsgs = -1;
    cfg.MaxBytes = -1;
    cfg.MaxAge = 0;
    cfg.Duplicates = Ns(options_.duplicates_window_ms);
    cfg.DenyDelete = true;
    cfg.DenyPurge = true;
    jerr = static_cast<jsErrCode>(0);
    s = js_AddStream(&si, js_, &cfg, nullptr, &jerr);
    if (s == NATS_OK) {
      Log(2, "created the log stream '" + name + "' (file storage, " + std::to_string(options_.replicas) +
                 " replicas, subject " + options_.subject + ")");
    } else if (jerr == JSStreamNameExistErr) {
      jerr = static_cast<jsErrCode>(0);
      s = js_GetStreamInfo(&si, js_, name.c_str(), nullptr, &jerr);  // another node created it: check it
    }
  }
  if (s != NATS_OK) {
    if (si != nullptr) jsStreamInfo_Destroy(si);
    return esdb::Status::Unavailable("JetStream cannot give stream '" + name + "' yet: " + NatsError(s, jerr));
  }
  const jsStreamConfig& c = *si->Config;
  std::string field, what;
  auto differs = [&](const std::string& f, const std::string& w) {
    if (field.empty()) {
      field = f;
      what = w;
    }
  };
  if (c.Replicas != options_.replicas) {
    differs("replicas", "has " + std::to_string(c.Replicas) + " replicas; this config asks for " +
                            std::to_string(options_.replicas));
  }
  if (c.SubjectsLen != 1 || c.Subjects == nullptr || options_.subject != c.Subjects[0]) {
    differs("subject", "does not have exactly the one subject '" + options_.subject + "'");
  }
  if (c.Storage != js_FileStorage) differs("stream", "does not use file storage");
  if (c.Retention != js_LimitsPolicy || c.MaxMsgs > 0 || c.MaxBytes > 0 || c.MaxAge > 0 || c.MaxMsgsPerSubject > 0) {
    differs("stream", "has a retention policy or limits (messages, bytes, age) that can remove entries");
  }
  if (!c.DenyDelete || !c.DenyPurge) differs("stream", "allows deleting or purging messages");
  if (c.Duplicates != Ns(options_.duplicates_window_ms)) {
    differs("duplicates_window_ms", "has a duplicates window of " + std::to_string(c.Duplicates / 1000000) +
                                        " ms; this config asks for " + std::to_string(options_.duplicates_window_ms));
  }
  NoteSequence(si->State.LastSeq);
  jsStreamInfo_Destroy(si);
  if (!field.empty()) {
    return esdb::Status::InvalidArgument("log config: field '" + field + "': the stream '" + name +
                                         "' exists with other settings: it " + what +
                                         " (change the config or the stream)");
  }
  const int64_t payload = natsConnection_GetMaxPayload(nc_);
  // Headers (Nats-Msg-Id and the server's own) and the id itself.
  max_entry_bytes_.store(payload > 1024 ? static_cast<size_t>(payload) - 1024 : 0);
  return esdb::Status::OK();
}

void NatsLog::Close() {
  if (closed_.exchange(true)) return;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    stopping_ = true;
  }
  queue_cv_.notify_all();
  for (auto& t : publishers_) t.join();
  publishers_.clear();
  std::deque<PendingAppend> left;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    left.swap(queue_);
  }
  for (auto& p : left) p.done(esdb::Status::Cancelled("the log is stopping"));
  {
    // Under the lock: a tail being destroyed waits in RemoveTail() until
    // this is done with it.
    std::lock_guard<std::mutex> lock(tails_mu_);
    for (NatsTail* t : tails_) t->Shutdown();
    tails_.clear();
  }
  std::unique_lock<std::shared_mutex> lock(conn_mu_);
  if (nc_ != nullptr) {
    natsConnection_Close(nc_);
    std::unique_lock<std::mutex> cb(closed_cb_mu_);
    closed_cb_cv_.wait_for(cb, std::chrono::seconds(5), [&] { return closed_cb_; });
  }
  if (js_ != nullptr) jsCtx_Destroy(js_);
  if (nc_ != nullptr) natsConnection_Destroy(nc_);
  if (nats_options_ != nullptr) natsOptions_Destroy(nats_options_);
  js_ = nullptr;
  nc_ = nullptr;
  nats_options_ = nullptr;
}

void NatsLog::NoteSequence(uint64_t sequence) {
  uint64_t cur = known_last_.load();
  while (sequence > cur && !known_last_.compare_exchange_weak(cur, sequence)) {
  }
}

void NatsLog::RemoveTail(NatsTail* tail) {
  std::lock_guard<std::mutex> lock(tails_mu_);
  tails_.erase(tail);
}

// ---- appends ---------------------------------------------------------------

void NatsLog::Append(std::string id, std::string data, esdb::LogAppendCallback done) {
  if (!ValidEntryId(id)) {
    return done(esdb::Status::InvalidArgument("log entry id must be 1 to 128 printable ASCII characters without "
                                              "spaces or ':'"));
  }
  const size_t max = max_entry_bytes_.load();
  if (data.size() > max) {
    return done(esdb::Status::InvalidArgument("log entry of " + std::to_string(data.size()) +
                                              " bytes is larger than the log takes (" + std::to_string(max) +
                                              " bytes: the NATS servers' max_payload less headers)"));
  }
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    if (!stopping_) {
      queue_.push_back(PendingAppend{std::move(id), std::move(data), std::move(done), Clock::now()});
      queue_cv_.notify_one();
      return;
    }
  }
  done(esdb::Status::Cancelled("the log is stopping"));
}

void NatsLog::PublisherLoop() {
  for (;;) {
    PendingAppend p;
    {
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (stopping_) return;  // Close() fails what is left
      p = std::move(queue_.front());
      queue_.pop_front();
    }
    esdb::Result<esdb::LogAppendResult> r = Publish(p);
    if (r.ok()) {
      appends_.fetch_add(1);
      bytes_appended_.fetch_add(p.data.size());
      if (r->duplicate) duplicates_.fetch_add(1);
      NoteSequence(r->sequence);
    } else {
      append_failures_.fetch_add(1);
    }
    try {
      p.done(std::move(r));
    } catch (...) {
      Log(4, "a log append callback threw");
    }
  }
}

esdb::Result<esdb::LogAppendResult> NatsLog::Publish(const PendingAppend& p) {
  const auto deadline = p.queued + std::chrono::milliseconds(options_.retry_window_ms);
  std::string last_error;
  for (int attempt = 0;; ++attempt) {
    {
      // The node's backoff: every publisher waits it out.
      std::unique_lock<std::mutex> lock(queue_mu_);
      queue_cv_.wait_until(lock, backoff_until_, [&] { return stopping_; });
      if (stopping_) return esdb::Status::Cancelled("the log is stopping (the entry may or may not be stored)");
    }
    natsStatus s;
    jsErrCode jerr = static_cast<jsErrCode>(0);
    jsPubAck* ack = nullptr;
    {
      std::shared_lock<std::shared_mutex> lock(conn_mu_);
      if (js_ == nullptr) return esdb::Status::Cancelled("the log is closed");
      jsPubOptions po;
      jsPubOptions_Init(&po);
      po.MsgId = p.id.c_str();
      po.MaxWait = options_.publish_timeout_ms;
      s = js_Publish(&ack, js_, options_.subject.c_str(), p.data.data(), static_cast<int>(p.data.size()), &po,
                     &jerr);
    }
    if (s == NATS_OK) {
      esdb::LogAppendResult r{ack->Sequence, ack->Duplicate};
      jsPubAck_Destroy(ack);
      std::lock_guard<std::mutex> lock(queue_mu_);
      backoff_ms_ = 0;
      return r;
    }
    if (ack != nullptr) jsPubAck_Destroy(ack);
    last_error = NatsError(s, jerr);
    if (!Retryable(s, jerr)) {
      return esdb::Status::Unavailable("the log refused entry " + p.id + ": " + last_error);
    }
    if (Clock::now() >= deadline) {
      return esdb::Status::Unavailable("the log did not acknowledge entry " + p.id + " within retry_window_ms (" +
                                       std::to_string(options_.retry_window_ms) + "); last error: " + last_error +
                                       "; it may or may not be stored");
    }
    append_retries_.fetch_add(1);
    std::lock_guard<std::mutex> lock(queue_mu_);
    const auto now = Clock::now();
    if (backoff_until_ <= now) {
      backoff_ms_ = backoff_ms_ == 0 ? 20 : std::min<int64_t>(backoff_ms_ * 2, 1000);
      backoff_until_ = now + std::chrono::milliseconds(backoff_ms_);
      if (backoff_ms_ >= 1000 || attempt == 0) {
        Log(3, "log append failed (" + last_error + "); retrying every " + std::to_string(backoff_ms_) + " ms");
      }
    }
  }
}

// ---- reads -----------------------------------------------------------------

esdb::Result<esdb::LogEntry> NatsLog::Get(uint64_t sequence) {
  std::shared_lock<std::shared_mutex> lock(conn_mu_);
  if (js_ == nullptr || closed_.load()) return esdb::Status::Cancelled("the log is closed");
  natsMsg* msg = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options_.publish_timeout_ms;
  natsStatus s = js_GetMsg(&msg, js_, options_.stream.c_str(), sequence, &jo, &jerr);
  if (s != NATS_OK) {
    if (s == NATS_NOT_FOUND || jerr == JSNoMessageFoundErr) {
      return esdb::Status::NotFound("the log has no entry " + std::to_string(sequence));
    }
    return esdb::Status::Unavailable("reading log entry " + std::to_string(sequence) + ": " + NatsError(s, jerr));
  }
  esdb::LogEntry e;
  e.sequence = sequence;
  const char* id = nullptr;
  if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id != nullptr) e.id = id;
  e.data.assign(natsMsg_GetData(msg), static_cast<size_t>(natsMsg_GetDataLength(msg)));
  natsMsg_Destroy(msg);
  return e;
}

esdb::Result<uint64_t> NatsLog::LastSequence() {
  std::shared_lock<std::shared_mutex> lock(conn_mu_);
  if (js_ == nullptr || closed_.load()) return esdb::Status::Cancelled("the log is closed");
  jsStreamInfo* si = nullptr;
  jsErrCode jerr = static_cast<jsErrCode>(0);
  jsOptions jo;
  jsOptions_Init(&jo);
  jo.Wait = options_.publish_timeout_ms;
  natsStatus s = js_GetStreamInfo(&si, js_, options_.stream.c_str(), &jo, &jerr);
  if (s != NATS_OK) {
    return esdb::Status::Unavailable("reading the state of stream '" + options_.stream + "': " + NatsError(s, jerr));
  }
  const uint64_t last = si->State.LastSeq;
  jsStreamInfo_Destroy(si);
  NoteSequence(last);
  return last;
}

esdb::Result<std::unique_ptr<esdb::LogTail>> NatsLog::Tail(uint64_t from, esdb::LogEntryHandler on_entry) {
  if (from == 0) return esdb::Status::InvalidArgument("a log tail starts at sequence 1 or later");
  if (!on_entry) return esdb::Status::InvalidArgument("a log tail needs a handler");
  auto tail = std::make_unique<NatsTail>(shared_from_this(), from, std::move(on_entry));
  {
    // Close() sets closed_ before it shuts the tails down under tails_mu_:
    // a tail is either refused here or begun before Close() reaches it.
    std::lock_guard<std::mutex> lock(tails_mu_);
    if (closed_.load()) return esdb::Status::Cancelled("the log is closed");
    tails_.insert(tail.get());
    tail->Begin();
  }
  return std::unique_ptr<esdb::LogTail>(std::move(tail));
}

nlohmann::json NatsLog::Stats() {
  size_t queued = 0, tails = 0;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    queued = queue_.size();
  }
  {
    std::lock_guard<std::mutex> lock(tails_mu_);
    tails = tails_.size();
  }
  return {{"connected", connected_.load()},
          {"servers", options_.nats.urls},
          {"user", options_.nats.user},
          {"stream", options_.stream},
          {"subject", options_.subject},
          {"replicas", options_.replicas},
          {"known_last_sequence", known_last_.load()},
          {"appends", appends_.load()},
          {"append_retries", append_retries_.load()},
          {"append_failures", append_failures_.load()},
          {"duplicate_appends", duplicates_.load()},
          {"bytes_appended", bytes_appended_.load()},
          {"queued_appends", queued},
          {"tails", tails},
          {"disconnects", disconnects_.load()},
          {"reconnects", reconnects_.load()},
          {"max_entry_bytes", max_entry_bytes_.load()}};
}

}  // namespace esdb_log
