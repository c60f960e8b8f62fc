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

}  // namespace

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
    if (b_->stopping.load()) {
      Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
      return;
    }
    counted_ = true;
    if (b_->open_appends.fetch_add(1) >= static_cast<size_t>(b_->config.max_concurrent_calls)) {
      Finish(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "more than max_concurrent_calls (" + std::to_string(b_->config.max_concurrent_calls) +
                              ") appends are in progress"));
      return;
    }
    if (grpc::Status a = b_->Authorize(*ctx_, Role::kWrite, "Appending", &role_); !a.ok()) {
      Finish(a);
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
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an append must be its options"));
        return;
      }
      has_options_ = true;
      stream_ = req_.options().stream_identifier().stream_name();
      expected_ = ExpectedFrom(req_.options());
      if (esdb::Status allowed = service_->CheckWrite(stream_, false, role_); !allowed.ok()) {
        Finish(ToGrpcError(ctx_, allowed, stream_));
        return;
      }
    } else {
      if (!req_.has_proposed_message()) {
        Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options may only be the first message of an append"));
        return;
      }
      std::string missing;
      auto e = ToProposedEvent(req_.proposed_message(), &missing);
      if (!missing.empty()) {
        Finish(MissingMetadata(ctx_, missing));
        return;
      }
      if (!e.ok()) {
        Finish(ToGrpcError(ctx_, e.status(), ""));
        return;
      }
      bytes_ += ProposedBytes(*e);
      if (bytes_ > b_->config.max_append_bytes) {
        Finish(AppendTooLarge(ctx_, b_->config.max_append_bytes));
        return;
      }
      events_.push_back(std::move(e).value());
    }
    StartRead(&req_);
  }

  void OnDone() override {
    if (counted_) b_->open_appends.fetch_sub(1);
    delete this;
  }

 private:
  void Append() {
    if (ctx_->IsCancelled()) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the append"));
      return;
    }
    if (!has_options_) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "the first message of an append must be its options"));
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
      Finish(grpc::Status::OK);
    } else if (r.status().code() == esdb::Code::kWrongExpectedVersion) {
      FillWrongExpectedVersion(r.status(), expected_, out_->mutable_wrong_expected_version());
      Finish(grpc::Status::OK);
    } else {
      Finish(ToGrpcError(ctx_, r.status(), stream_, &expected_));
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

grpc::Status StreamsService::BatchAppend(grpc::ServerContext* ctx,
                                         grpc::ServerReaderWriter<spb::BatchAppendResp, spb::BatchAppendReq>* stream) {
  // The handler thread reads; finished batches are appended by up to
  // kWorkers threads of this call (so one connection's appends, which the
  // clients multiplex on one BatchAppend call, commit together), which
  // write the answers one at a time. All are joined before returning.
  Role role = Role::kNone;
  if (grpc::Status a = b_->Authorize(*ctx, Role::kWrite, "Appending", &role); !a.ok()) return a;
  constexpr size_t kWorkers = 8;
  constexpr size_t kMaxOpenBatches = 1024;
  constexpr size_t kMaxReadyBatches = 64;  // finished, waiting for a worker: the reader waits beyond
  // Unfinished batches of one call together (each is also bounded by max_append_bytes).
  const uint64_t max_open_bytes = 16 * b_->config.max_append_bytes;
  uint64_t open_bytes = 0;
  std::mutex mu;
  std::condition_variable cv;        // a batch is ready, or reading is done
  std::condition_variable ready_cv;  // a worker took a batch
  std::deque<PendingBatch> ready;
  bool reading_done = false;
  size_t idle = 0;
  std::vector<std::thread> workers;
  std::mutex write_mu;

  auto answer = [&](const PendingBatch& batch, const esdb::Result<esdb::AppendResult>& r) {
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
    std::lock_guard<std::mutex> lock(write_mu);
    stream->Write(resp);
  };

  auto work = [&] {
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      ++idle;
      cv.wait(lock, [&] { return !ready.empty() || reading_done; });
      --idle;
      if (ready.empty()) return;
      PendingBatch batch = std::move(ready.front());
      ready.pop_front();
      ready_cv.notify_one();
      lock.unlock();
      esdb::Result<esdb::AppendResult> r = esdb::Status::Internal("not appended");
      if (!batch.error.ok()) {
        r = batch.error;
      } else {
        const auto& o = batch.options;
        std::optional<std::chrono::steady_clock::time_point> deadline;
        if (o.has_deadline()) {
          deadline = batch.arrived + std::chrono::nanoseconds(
                                         google::protobuf::util::TimeUtil::DurationToNanoseconds(o.deadline()));
        }
        if (deadline && std::chrono::steady_clock::now() > *deadline) {
          r = esdb::Status::Timeout("the batch's deadline passed before it was appended");
        } else {
          r = DoAppend(o.stream_identifier().stream_name(), BatchExpected(o), std::move(batch.events));
        }
      }
      answer(batch, r);
      lock.lock();
    }
  };

  std::map<std::string, PendingBatch> open;
  spb::BatchAppendReq req;
  grpc::Status result = grpc::Status::OK;
  while (!b_->stopping.load() && stream->Read(&req)) {
    const auto corr = UuidText(req.correlation_id());
    if (!corr) {
      result = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "a BatchAppend message without a valid correlation_id");
      break;
    }
    auto it = open.find(*corr);
    if (it == open.end()) {
      if (open.size() >= kMaxOpenBatches) {
        result = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "more than " + std::to_string(kMaxOpenBatches) + " unfinished batches on one call");
        break;
      }
      it = open.emplace(*corr, PendingBatch{}).first;
      it->second.correlation = req.correlation_id();
      it->second.arrived = std::chrono::steady_clock::now();
    }
    PendingBatch& batch = it->second;
    if (req.has_options() && !batch.has_options) {
      batch.options = req.options();
      batch.has_options = true;
      const std::string name = batch.options.stream_identifier().stream_name();
      esdb::Status allowed = CheckWrite(name, false, role);
      if (!allowed.ok() && batch.error.ok()) batch.error = allowed;
    }
    if (!batch.has_options && batch.error.ok()) {
      batch.error = esdb::Status::InvalidArgument("the first message of a batch must carry its options");
    }
    for (const auto& m : req.proposed_messages()) {
      if (!batch.error.ok()) break;
      std::string missing;
      auto e = ToProposedEvent(m, &missing);
      if (!e.ok()) {
        batch.error = e.status();
        break;
      }
      batch.bytes += ProposedBytes(*e);
      open_bytes += ProposedBytes(*e);
      if (batch.bytes > b_->config.max_append_bytes) {
        batch.error = esdb::Status::ResourceExhausted("the append exceeds max_append_bytes");
        batch.error.SetDetail(static_cast<int64_t>(b_->config.max_append_bytes));
        open_bytes -= batch.bytes;
        batch.bytes = 0;
        batch.events.clear();
        break;
      }
      batch.events.push_back(std::move(e).value());
    }
    if (open_bytes > max_open_bytes) {
      result = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                            "unfinished batches of this call hold more than " + std::to_string(max_open_bytes) + " bytes");
      break;
    }
    if (!req.is_final()) continue;
    open_bytes -= batch.bytes;
    {
      std::unique_lock<std::mutex> lock(mu);
      ready_cv.wait(lock, [&] { return ready.size() < kMaxReadyBatches; });
      ready.push_back(std::move(batch));
      if (idle == 0 && workers.size() < kWorkers) workers.emplace_back(work);
      cv.notify_one();
    }
    open.erase(it);
  }
  {
    std::lock_guard<std::mutex> lock(mu);
    reading_done = true;
  }
  cv.notify_all();
  for (auto& t : workers) t.join();
  if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the client cancelled the call");
  if (result.ok() && b_->stopping.load()) return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
  return result;
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
