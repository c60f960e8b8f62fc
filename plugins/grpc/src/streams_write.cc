// Streams.Append, BatchAppend, Delete, Tombstone and the metadata stream.
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <google/protobuf/util/time_util.h>

#include "convert.h"
#include "errors.h"
#include "metadata_stream.h"
#include "streams_service.h"

namespace esdb_grpc {
namespace {

// The success of an append, in an AppendResp or a BatchAppendResp.
template <class Success>
void FillSuccess(const esdb::AppendResult& r, Success* ok) {
  if (r.next_expected_version >= 0) {
    ok->set_current_revision(static_cast<uint64_t>(r.next_expected_version));
  } else {
    ok->mutable_no_stream();
  }
  ok->mutable_position()->set_commit_position(r.position);
  ok->mutable_position()->set_prepare_position(r.position);
}

// KurrentDB's answer when an append's expected version fails: in the
// AppendResp, with both the current and the old (20.6.0) field layout.
void FillWrongExpectedVersion(const esdb::Status& s, const esdb::ExpectedVersion& expected,
                              spb::AppendResp::WrongExpectedVersion* w) {
  if (s.detail() && *s.detail() >= 0) {
    w->set_current_revision(static_cast<uint64_t>(*s.detail()));
    w->set_current_revision_20_6_0(static_cast<uint64_t>(*s.detail()));
  } else {
    w->mutable_current_no_stream();
    w->mutable_no_stream_20_6_0();
  }
  switch (expected.kind) {
    case esdb::ExpectedVersion::Kind::kExact:
      w->set_expected_revision(static_cast<uint64_t>(expected.version));
      w->set_expected_revision_20_6_0(static_cast<uint64_t>(expected.version));
      break;
    case esdb::ExpectedVersion::Kind::kAny:
      w->mutable_expected_any();
      w->mutable_any_20_6_0();
      break;
    case esdb::ExpectedVersion::Kind::kStreamExists:
      w->mutable_expected_stream_exists();
      w->mutable_stream_exists_20_6_0();
      break;
    case esdb::ExpectedVersion::Kind::kNoStream: w->mutable_expected_no_stream(); break;
  }
}

// The same for a BatchAppend error's details.
void FillSharedWrongExpectedVersion(const esdb::Status& s, const esdb::ExpectedVersion& expected,
                                    pb::WrongExpectedVersion* w) {
  if (s.detail() && *s.detail() >= 0) {
    w->set_current_stream_revision(static_cast<uint64_t>(*s.detail()));
  } else {
    w->mutable_current_no_stream();
  }
  switch (expected.kind) {
    case esdb::ExpectedVersion::Kind::kExact: w->set_expected_stream_position(static_cast<uint64_t>(expected.version)); break;
    case esdb::ExpectedVersion::Kind::kAny: w->mutable_expected_any(); break;
    case esdb::ExpectedVersion::Kind::kStreamExists: w->mutable_expected_stream_exists(); break;
    case esdb::ExpectedVersion::Kind::kNoStream: w->mutable_expected_no_stream(); break;
  }
}

esdb::ExpectedVersion BatchExpected(const spb::BatchAppendReq::Options& o) {
  using O = spb::BatchAppendReq::Options;
  switch (o.expected_stream_position_case()) {
    case O::kStreamPosition: return esdb::ExpectedVersion::Exact(static_cast<int64_t>(o.stream_position()));
    case O::kNoStream: return esdb::ExpectedVersion::NoStream();
    case O::kStreamExists: return esdb::ExpectedVersion::StreamExists();
    default: return esdb::ExpectedVersion::Any();
  }
}

void EchoBatchExpected(const spb::BatchAppendReq::Options& o, spb::BatchAppendResp* r) {
  using O = spb::BatchAppendReq::Options;
  switch (o.expected_stream_position_case()) {
    case O::kStreamPosition: r->set_stream_position(o.stream_position()); break;
    case O::kNoStream: r->mutable_no_stream(); break;
    case O::kStreamExists: r->mutable_stream_exists(); break;
    default: r->mutable_any(); break;
  }
}

}  // namespace

// One batch of a BatchAppend call, from its first message to is_final.
struct PendingBatch {
  bool has_options = false;
  spb::BatchAppendReq::Options options;
  pb::UUID correlation;
  std::vector<esdb::ProposedEvent> events;
  uint64_t bytes = 0;
  esdb::Status error;                 // the first problem of the batch
  std::chrono::steady_clock::time_point arrived{};
};

esdb::Status StreamsService::CheckWrite(const std::string& stream, bool hard_delete, Role role) const {
  if (stream.empty()) return esdb::Status::InvalidArgument("stream name is empty");
  if (stream == esdb::kAllStreamId) return esdb::Status::InvalidArgument("$all is read-only");
  if (role >= Role::kAdmin) return esdb::Status::OK();
  const auto target = MetadataTarget(stream);
  const std::string& owner = target ? *target : stream;
  if (!owner.empty() && owner[0] == '$') {
    return esdb::Status(esdb::Code::kPermissionDenied, "writing to the system stream \"" + owner + "\" needs the admin role");
  }
  if (hard_delete) return esdb::Status(esdb::Code::kPermissionDenied, "a tombstone (hard delete) needs the admin role");
  return esdb::Status::OK();
}

esdb::Result<esdb::AppendResult> StreamsService::DoAppend(const std::string& stream,
                                                          const esdb::ExpectedVersion& expected,
                                                          std::vector<esdb::ProposedEvent> events) {
  auto store = b_->store();
  if (!store) return esdb::Status::Unavailable("the event store is not available (missing: store)");
  const auto target = MetadataTarget(stream);
  if (!target) return store->Append(stream, expected, std::move(events));
  // "$$<stream>": one "$metadata" event sets the store's metadata of <stream>.
  if (events.size() != 1 || events[0].event_type != "$metadata") {
    return esdb::Status::InvalidArgument("a metadata stream takes exactly one event of type $metadata per append");
  }
  auto metadata = MetadataFromJson(events[0].data);
  if (!metadata.ok()) return metadata.status();
  auto current = store->GetMetadata(*target);
  if (!current.ok() && current.status().code() != esdb::Code::kNotFound) return current.status();
  const bool exists = current.ok() && !IsEmptyMetadata(*current);
  bool holds = true;
  switch (expected.kind) {
    case esdb::ExpectedVersion::Kind::kAny: break;
    case esdb::ExpectedVersion::Kind::kNoStream: holds = !exists; break;
    case esdb::ExpectedVersion::Kind::kStreamExists: holds = exists; break;
    case esdb::ExpectedVersion::Kind::kExact: holds = exists && expected.version == 0; break;
  }
  if (!holds) {
    esdb::Status s = esdb::Status::WrongExpectedVersion("expected version " + esdb::ToString(expected) +
                                                        " but metadata stream \"" + stream + "\" is at " +
                                                        (exists ? "version 0" : "no stream"));
    s.SetDetail(exists ? 0 : -1);
    return s;
  }
  esdb::Status s = store->SetMetadata(*target, *metadata);
  if (!s.ok()) return s;
  esdb::AppendResult r;
  r.next_expected_version = 0;
  return r;
}

// Whether a new Append or BatchAppend call may go on: not while stopping,
// at most max_concurrent_calls of them (counted in open_appends when
// `*counted` is set: the call's FinishCall gives it back), and with the write
// role (`*role`: the caller's).
grpc::Status AdmitAppendCall(Backend& b, grpc::CallbackServerContext& ctx, bool* counted, Role* role) {
  if (b.stopping.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
  *counted = true;
  if (b.open_appends.fetch_add(1) >= static_cast<size_t>(b.config.max_concurrent_calls)) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "more than max_concurrent_calls (" +
                                                                  std::to_string(b.config.max_concurrent_calls) +
                                                                  ") appends are in progress");
  }
  return b.Authorize(ctx, Role::kWrite, "Appending", role);
}

// Gives back a call's place in open_appends (once; before its Finish, so a
// client that saw its call end can open another at once).
void ReleaseAppendCall(Backend& b, bool* counted) {
  if (!*counted) return;
  *counted = false;
  b.open_appends.fetch_sub(1);
}

// One Append call on the callback API: reads the options and the events
// (as gRPC hands them over, on its threads), then appends them with the
// store's AppendAsync and finishes from the store's completion. It deletes
// itself in OnDone, which gRPC calls once Finish completed; the server's
// Shutdown waits for that, and the store calls every completion exactly
// once, so no reactor outlives the plugin's stop.
class AppendCall final : public grpc::ServerReadReactor<spb::AppendReq> {
 public:
  AppendCall(StreamsService* service, grpc::CallbackServerContext* ctx, spb::AppendResp* out)
      : service_(service), b_(service->b_), ctx_(ctx), out_(out) {
    if (grpc::Status s = AdmitAppendCall(*b_, *ctx_, &counted_, &role_); !s.ok()) {
      FinishCall(s);
      return;
    }
    StartRead(&req_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client sent everything (or went away)
      Append();
      return;
    }
    if (!has_options_) {
      if (!req_.has_options()) {
        FinishCall(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an append must be its options"));
        return;
      }
      has_options_ = true;
      stream_ = req_.options().stream_identifier().stream_name();
      expected_ = ExpectedFrom(req_.options());
      if (esdb::Status allowed = service_->CheckWrite(stream_, false, role_); !allowed.ok()) {
        FinishCall(ToGrpcError(ctx_, allowed, stream_));
        return;
      }
    } else {
      if (!req_.has_proposed_message()) {
        FinishCall(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options may only be the first message of an append"));
        return;
      }
      std::string missing;
      auto e = ToProposedEvent(req_.proposed_message(), &missing);
      if (!missing.empty()) {
        FinishCall(MissingMetadata(ctx_, missing));
        return;
      }
      if (!e.ok()) {
        FinishCall(ToGrpcError(ctx_, e.status(), ""));
        return;
      }
      bytes_ += ProposedBytes(*e);
      if (bytes_ > b_->config.max_append_bytes) {
        FinishCall(AppendTooLarge(ctx_, b_->config.max_append_bytes));
        return;
      }
      events_.push_back(std::move(e).value());
    }
    StartRead(&req_);
  }

  void OnDone() override {
    ReleaseAppendCall(*b_, &counted_);
    delete this;
  }

 private:
  // Finish, after giving back the call's place in open_appends.
  void FinishCall(const grpc::Status& status) {
    ReleaseAppendCall(*b_, &counted_);
    Finish(status);
  }

  void Append() {
    if (ctx_->IsCancelled()) {
      FinishCall(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the append"));
      return;
    }
    if (!has_options_) {
      FinishCall(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an append must be its options"));
      return;
    }
    auto store = b_->store();
    if (!store || MetadataTarget(stream_)) {  // "$$<stream>" (rare): the store's metadata calls, here
      Done(service_->DoAppend(stream_, expected_, std::move(events_)));
      return;
    }
    store->AppendAsync(stream_, expected_, std::move(events_),
                       [this](esdb::Result<esdb::AppendResult> r) { Done(std::move(r)); });
  }

  void Done(esdb::Result<esdb::AppendResult> r) {
    if (r.ok()) {
      FillSuccess(*r, out_->mutable_success());
      FinishCall(grpc::Status::OK);
    } else if (r.status().code() == esdb::Code::kWrongExpectedVersion) {
      FillWrongExpectedVersion(r.status(), expected_, out_->mutable_wrong_expected_version());
      FinishCall(grpc::Status::OK);
    } else {
      FinishCall(ToGrpcError(ctx_, r.status(), stream_, &expected_));
    }
  }

  StreamsService* service_;
  std::shared_ptr<Backend> b_;
  grpc::CallbackServerContext* ctx_;
  spb::AppendResp* out_;
  bool counted_ = false;  // in open_appends
  Role role_ = Role::kNone;
  spb::AppendReq req_;
  bool has_options_ = false;
  std::string stream_;
  esdb::ExpectedVersion expected_ = esdb::ExpectedVersion::Any();
  std::vector<esdb::ProposedEvent> events_;
  uint64_t bytes_ = 0;
};

grpc::ServerReadReactor<spb::AppendReq>* StreamsService::Append(grpc::CallbackServerContext* ctx, spb::AppendResp* out) {
  return new AppendCall(this, ctx, out);
}

// The answer to one batch of a BatchAppend call: its outcome, with the
// protocol's error details.
static spb::BatchAppendResp BatchAnswer(const PendingBatch& batch, const esdb::Result<esdb::AppendResult>& r) {
  spb::BatchAppendResp resp;
  *resp.mutable_correlation_id() = batch.correlation;
  *resp.mutable_stream_identifier() = batch.options.stream_identifier();
  EchoBatchExpected(batch.options, &resp);
  if (r.ok()) {
    FillSuccess(*r, resp.mutable_success());
  } else {
    const esdb::Status& s = r.status();
    auto* err = resp.mutable_error();
    err->set_code(static_cast<int>(GrpcCodeFor(s.code())));
    err->set_message(s.message());
    const std::string name = batch.options.stream_identifier().stream_name();
    if (s.code() == esdb::Code::kWrongExpectedVersion) {
      pb::WrongExpectedVersion w;
      FillSharedWrongExpectedVersion(s, BatchExpected(batch.options), &w);
      err->mutable_details()->PackFrom(w);
    } else if (s.code() == esdb::Code::kStreamDeleted) {
      pb::StreamDeleted d;
      d.mutable_stream_identifier()->set_stream_name(name);
      err->mutable_details()->PackFrom(d);
    } else if (s.code() == esdb::Code::kPermissionDenied) {
      err->mutable_details()->PackFrom(pb::AccessDenied());
    } else if (s.code() == esdb::Code::kTimeout) {
      err->mutable_details()->PackFrom(pb::Timeout());
    } else if (s.code() == esdb::Code::kResourceExhausted && s.detail()) {
      pb::MaximumAppendSizeExceeded m;
      m.set_maxappendsize(static_cast<uint32_t>(*s.detail()));
      err->mutable_details()->PackFrom(m);
    } else if (s.code() == esdb::Code::kInvalidArgument) {
      pb::BadRequest bad;
      bad.set_message(s.message());
      err->mutable_details()->PackFrom(bad);
    } else {
      err->mutable_details()->PackFrom(pb::Unknown());
    }
  }
  return resp;
}

// One BatchAppend call on the callback API (a bidi stream that a client
// keeps open and multiplexes its appends on, matched by correlation id).
// Messages are read as gRPC hands them over; a finished batch goes to the
// store's AppendAsync at once, so one connection's batches commit together,
// and each answer is written as its append completes, one write at a time
// (queued meanwhile). At most kMaxInFlight appends of a call are in
// progress: reading pauses beyond. The call ends once the client finished
// sending (or a problem ended reading: its status) and every append of it
// was answered. It deletes itself in OnDone, which comes after Finish, and
// Finish comes only when no append is in progress.
class BatchAppendCall final : public grpc::ServerBidiReactor<spb::BatchAppendReq, spb::BatchAppendResp>,
                              public EndableCall {
 public:
  static constexpr size_t kMaxOpenBatches = 1024;  // unfinished batches of one call
  static constexpr size_t kMaxInFlight = 64;       // appends of one call in progress

  BatchAppendCall(StreamsService* service, grpc::CallbackServerContext* ctx)
      : service_(service), b_(service->b_), ctx_(ctx), max_open_bytes_(16 * b_->config.max_append_bytes) {
    if (grpc::Status s = AdmitAppendCall(*b_, *ctx_, &counted_, &role_); !s.ok()) {
      FinishCall(s);
      return;
    }
    registered_ = service_->calls_->Add(this, SIZE_MAX);
    StartRead(&req_);
  }

  // A stop: the call ends once the appends in progress are answered.
  void End(const grpc::Status& status) override { EndReading(status); }

  void OnReadDone(bool ok) override {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (reading_done_) return;  // ended meanwhile (a stop): the message is not taken
    }
    if (!ok) {
      EndReading(grpc::Status::OK);
      return;
    }
    if (b_->stopping.load()) {
      EndReading(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
      return;
    }
    std::shared_ptr<PendingBatch> finished;
    if (grpc::Status s = Take(&finished); !s.ok()) {
      EndReading(s);
      return;
    }
    if (finished) Submit(std::move(finished));
    bool read = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (in_flight_ >= kMaxInFlight) {
        read_paused_ = true;
      } else {
        read = true;
      }
    }
    if (read) StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      write_failed_ = true;  // the client went away: its reads end too
      to_write_.clear();
    }
    Act(std::move(lock));
  }

  void OnDone() override {
    if (registered_) service_->calls_->Remove(this);
    ReleaseAppendCall(*b_, &counted_);
    delete this;
  }

 private:
  // Finish, after giving back the call's place in open_appends.
  void FinishCall(const grpc::Status& status) {
    ReleaseAppendCall(*b_, &counted_);
    Finish(status);
  }

  // Takes req_ into its batch; `*finished` is set when it completed one.
  // A status that is not ok ends the call.
  grpc::Status Take(std::shared_ptr<PendingBatch>* finished) {
    const auto corr = UuidText(req_.correlation_id());
    if (!corr) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a BatchAppend message without a valid correlation_id");
    auto it = open_.find(*corr);
    if (it == open_.end()) {
      if (open_.size() >= kMaxOpenBatches) {
        return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "more than " + std::to_string(kMaxOpenBatches) + " unfinished batches on one call");
      }
      it = open_.emplace(*corr, PendingBatch{}).first;
      it->second.correlation = req_.correlation_id();
      it->second.arrived = std::chrono::steady_clock::now();
    }
    PendingBatch& batch = it->second;
    if (req_.has_options() && !batch.has_options) {
      batch.options = req_.options();
      batch.has_options = true;
      esdb::Status allowed = service_->CheckWrite(batch.options.stream_identifier().stream_name(), false, role_);
      if (!allowed.ok() && batch.error.ok()) batch.error = allowed;
    }
    if (!batch.has_options && batch.error.ok()) {
      batch.error = esdb::Status::InvalidArgument("the first message of a batch must carry its options");
    }
    for (const auto& m : req_.proposed_messages()) {
      if (!batch.error.ok()) break;
      std::string missing;
      auto e = ToProposedEvent(m, &missing);
      if (!e.ok()) {
        batch.error = e.status();
        break;
      }
      batch.bytes += ProposedBytes(*e);
      open_bytes_ += ProposedBytes(*e);
      if (batch.bytes > b_->config.max_append_bytes) {
        batch.error = esdb::Status::ResourceExhausted("the append exceeds max_append_bytes");
        batch.error.SetDetail(static_cast<int64_t>(b_->config.max_append_bytes));
        open_bytes_ -= batch.bytes;
        batch.bytes = 0;
        batch.events.clear();
        break;
      }
      batch.events.push_back(std::move(e).value());
    }
    if (open_bytes_ > max_open_bytes_) {
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "unfinished batches of this call hold more than " + std::to_string(max_open_bytes_) + " bytes");
    }
    if (req_.is_final()) {
      open_bytes_ -= batch.bytes;
      *finished = std::make_shared<PendingBatch>(std::move(batch));
      open_.erase(it);
    }
    return grpc::Status::OK;
  }

  // Appends a finished batch (or answers it at once: its error, a passed deadline).
  void Submit(std::shared_ptr<PendingBatch> batch) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++in_flight_;
    }
    if (!batch->error.ok()) return Complete(batch, batch->error);
    const auto& o = batch->options;
    if (o.has_deadline()) {
      const auto deadline = batch->arrived + std::chrono::nanoseconds(
                                                 google::protobuf::util::TimeUtil::DurationToNanoseconds(o.deadline()));
      if (std::chrono::steady_clock::now() > deadline) {
        return Complete(batch, esdb::Status::Timeout("the batch's deadline passed before it was appended"));
      }
    }
    const std::string stream = o.stream_identifier().stream_name();
    auto store = b_->store();
    if (!store || MetadataTarget(stream)) {  // "$$<stream>" (rare): the store's metadata calls, here
      return Complete(batch, service_->DoAppend(stream, BatchExpected(o), std::move(batch->events)));
    }
    std::vector<esdb::ProposedEvent> events = std::move(batch->events);
    store->AppendAsync(stream, BatchExpected(o), std::move(events),
                       [this, batch](esdb::Result<esdb::AppendResult> r) { Complete(batch, r); });
  }

  // An append of this call completed (on a store thread, or here).
  void Complete(const std::shared_ptr<PendingBatch>& batch, const esdb::Result<esdb::AppendResult>& r) {
    spb::BatchAppendResp resp = BatchAnswer(*batch, r);
    std::unique_lock<std::mutex> lock(mu_);
    --in_flight_;
    if (!write_failed_) to_write_.push_back(std::move(resp));
    Act(std::move(lock));
  }

  // No more messages are taken; the call ends with `why` (the first
  // reason given) once every append in progress was answered.
  void EndReading(const grpc::Status& why) {
    std::unique_lock<std::mutex> lock(mu_);
    if (!reading_done_) result_ = why;
    reading_done_ = true;
    Act(std::move(lock));
  }

  // Decides, under `lock`, what comes next (a write, resuming reads, the
  // end of the call), then does it without the lock. Finish is the last
  // thing done: OnDone (and the deletion of this) may follow at once.
  void Act(std::unique_lock<std::mutex> lock) {
    const spb::BatchAppendResp* write = nullptr;
    if (!writing_ && !to_write_.empty()) {
      writing_ = true;
      current_ = std::move(to_write_.front());
      to_write_.pop_front();
      write = &current_;
    }
    bool read = false;
    if (read_paused_ && !reading_done_ && in_flight_ < kMaxInFlight) {
      read_paused_ = false;
      read = true;
    }
    bool finish = false;
    if (reading_done_ && in_flight_ == 0 && !writing_ && to_write_.empty() && !finished_) {
      finished_ = true;
      finish = true;
    }
    lock.unlock();
    if (write) StartWrite(write);
    if (read) StartRead(&req_);
    if (finish) {
      if (ctx_->IsCancelled()) {
        FinishCall(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the call"));
      } else {
        FinishCall(result_);
      }
    }
  }

  StreamsService* service_;
  std::shared_ptr<Backend> b_;
  grpc::CallbackServerContext* ctx_;
  const uint64_t max_open_bytes_;  // unfinished batches of the call together (each also <= max_append_bytes)
  bool counted_ = false;           // in open_appends
  bool registered_ = false;        // in service_->calls_
  Role role_ = Role::kNone;
  // Reading side (gRPC runs one reaction of a kind at a time).
  spb::BatchAppendReq req_;
  std::map<std::string, PendingBatch> open_;  // by correlation id
  uint64_t open_bytes_ = 0;
  // Shared with the completions and the writes, under mu_.
  std::mutex mu_;
  size_t in_flight_ = 0;
  bool read_paused_ = false;
  bool reading_done_ = false;
  grpc::Status result_;
  std::deque<spb::BatchAppendResp> to_write_;
  spb::BatchAppendResp current_;  // being written
  bool writing_ = false;
  bool write_failed_ = false;
  bool finished_ = false;
};

grpc::ServerBidiReactor<spb::BatchAppendReq, spb::BatchAppendResp>* StreamsService::BatchAppend(
    grpc::CallbackServerContext* ctx) {
  return new BatchAppendCall(this, ctx);
}

grpc::Status StreamsService::DeleteCommon(grpc::ServerContext* ctx, const std::string& stream,
                                          const esdb::ExpectedVersion& expected, bool hard) {
  Role role = Role::kNone;
  if (grpc::Status a = b_->Authorize(*ctx, Role::kWrite, hard ? "A tombstone" : "Deleting a stream", &role); !a.ok()) {
    return a;
  }
  esdb::Status allowed = CheckWrite(stream, hard, role);
  if (!allowed.ok()) return ToGrpcError(ctx, allowed, stream);
  auto store = b_->store();
  if (!store) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the event store is not available (missing: store)");
  esdb::Status s = store->DeleteStream(stream, expected, hard, esdb::CallContext{});
  if (!s.ok()) return ToGrpcError(ctx, s, stream, &expected);
  return grpc::Status::OK;
}

grpc::Status StreamsService::Delete(grpc::ServerContext* ctx, const spb::DeleteReq* req, spb::DeleteResp* out) {
  grpc::Status s = DeleteCommon(ctx, req->options().stream_identifier().stream_name(), ExpectedFrom(req->options()), false);
  if (s.ok()) out->mutable_no_position();
  return s;
}

grpc::Status StreamsService::Tombstone(grpc::ServerContext* ctx, const spb::TombstoneReq* req, spb::TombstoneResp* out) {
  grpc::Status s = DeleteCommon(ctx, req->options().stream_identifier().stream_name(), ExpectedFrom(req->options()), true);
  if (s.ok()) out->mutable_no_position();
  return s;
}

}  // namespace esdb_grpc
