#include "persistent_service.h"

#include "errors.h"
#include "persistent_convert.h"

namespace esdb_grpc {
namespace {

grpc::Status GroupRequestInvalid(const esdb::Status& s) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, s.message());
}

// The stream ("$all" for the all option) of a request's stream_option, or "".
template <class Options>
std::string StreamOf(const Options& o) {
  if (o.stream_option_case() == Options::kAll) return esdb::kAllStreamId;
  return o.has_stream_identifier() ? o.stream_identifier().stream_name() : std::string();
}

// A Read refused before it starts: finishes at once with the error.
class Refused final : public grpc::ServerBidiReactor<pspb::ReadReq, pspb::ReadResp> {
 public:
  explicit Refused(grpc::Status error) { Finish(std::move(error)); }
  void OnDone() override { delete this; }
};

}  // namespace

std::shared_ptr<esdb::SubscriptionsV2> PersistentService::Subs(grpc::Status* error) const {
  if (b_->stopping.load()) {
    *error = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping");
    return nullptr;
  }
  auto subs = b_->subscriptions();
  if (!subs) {
    *error = grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the subscriptions service is not available (missing: notification)");
  }
  return subs;
}

std::shared_ptr<esdb::SubscriptionsV2> PersistentService::SubsFor(const std::string& stream, grpc::Status* error) const {
  if (stream.empty()) {
    *error = grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "options name no stream (stream_identifier or all)");
    return nullptr;
  }
  return Subs(error);
}

grpc::Status PersistentService::Create(grpc::ServerContext* ctx, const pspb::CreateReq* req, pspb::CreateResp*) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kAdmin, "Creating a persistent subscription"); !a.ok()) return a;
  return CreateOrUpdate(ctx, FromCreate(*req), true);
}

grpc::Status PersistentService::Update(grpc::ServerContext* ctx, const pspb::UpdateReq* req, pspb::UpdateResp*) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kAdmin, "Updating a persistent subscription"); !a.ok()) return a;
  return CreateOrUpdate(ctx, FromUpdate(*req), false);
}

grpc::Status PersistentService::CreateOrUpdate(grpc::ServerContext* ctx, esdb::Result<GroupRequest> r, bool create) {
  if (!r.ok()) return GroupRequestInvalid(r.status());
  grpc::Status error;
  auto subs = Subs(&error);
  if (!subs) return error;
  if (!create && r->stream == esdb::kAllStreamId) {
    // The protocol's Update carries no filter: the group keeps its own.
    auto info = subs->GetGroupInfoV2(r->stream, r->group);
    if (!info.ok()) return GroupError(ctx, info.status(), r->stream, r->group);
    r->settings.filter = info->settings.filter;
  }
  esdb::Status s = create ? subs->CreateGroup(r->stream, r->group, r->settings)
                          : subs->UpdateGroup(r->stream, r->group, r->settings);
  if (!s.ok()) return GroupError(ctx, s, r->stream, r->group);
  return grpc::Status::OK;
}

grpc::Status PersistentService::Delete(grpc::ServerContext* ctx, const pspb::DeleteReq* req, pspb::DeleteResp*) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kAdmin, "Deleting a persistent subscription"); !a.ok()) return a;
  const std::string stream = StreamOf(req->options());
  const std::string& group = req->options().group_name();
  grpc::Status error;
  auto subs = SubsFor(stream, &error);
  if (!subs) return error;
  esdb::Status s = subs->DeleteGroup(stream, group);
  if (!s.ok()) return GroupError(ctx, s, stream, group);
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<pspb::ReadReq, pspb::ReadResp>* PersistentService::Read(grpc::CallbackServerContext* ctx) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kRead, "Reading a persistent subscription"); !a.ok()) {
    return new Refused(std::move(a));
  }
  return StartPersistentRead(b_, reads_, ctx);
}

grpc::Status PersistentService::GetInfo(grpc::ServerContext* ctx, const pspb::GetInfoReq* req,
                                        pspb::GetInfoResp* out) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kRead, "Getting a persistent subscription's info"); !a.ok()) return a;
  const std::string stream = StreamOf(req->options());
  const std::string& group = req->options().group_name();
  grpc::Status error;
  auto subs = SubsFor(stream, &error);
  if (!subs) return error;
  auto info = subs->GetGroupInfoV2(stream, group);
  if (!info.ok()) return GroupError(ctx, info.status(), stream, group);
  ToSubscriptionInfo(*info, out->mutable_subscription_info());
  return grpc::Status::OK;
}

grpc::Status PersistentService::ReplayParked(grpc::ServerContext* ctx, const pspb::ReplayParkedReq* req,
                                             pspb::ReplayParkedResp*) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kAdmin, "Replaying parked messages"); !a.ok()) return a;
  const auto& o = req->options();
  const std::string stream = StreamOf(o);
  // stop_at: replay that many parked messages, the oldest first (the rest
  // stay parked); no_limit (or neither) replays every one.
  uint64_t max_count = esdb::kReplayAllParked;
  if (o.stop_at_option_case() == pspb::ReplayParkedReq::Options::kStopAt) {
    if (o.stop_at() < 0) {
      return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "stop_at " + std::to_string(o.stop_at()) + " is negative (a count of parked messages)");
    }
    max_count = static_cast<uint64_t>(o.stop_at());
  }
  grpc::Status error;
  auto subs = SubsFor(stream, &error);
  if (!subs) return error;
  auto replayed = subs->ReplayParked(stream, o.group_name(), max_count);
  if (!replayed.ok()) return GroupError(ctx, replayed.status(), stream, o.group_name());
  return grpc::Status::OK;
}

grpc::Status PersistentService::List(grpc::ServerContext* ctx, const pspb::ListReq* req, pspb::ListResp* out) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kRead, "Listing persistent subscriptions"); !a.ok()) return a;
  const auto& o = req->options();
  std::string stream;  // "" = every group
  if (o.list_option_case() == pspb::ListReq::Options::kListForStream) {
    const auto& so = o.list_for_stream();
    stream = so.stream_option_case() == pspb::ListReq::StreamOption::kAll ? esdb::kAllStreamId
                                                                            : so.stream().stream_name();
    if (stream.empty()) return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "list_for_stream names no stream");
  }
  grpc::Status error;
  auto subs = Subs(&error);
  if (!subs) return error;
  auto groups = subs->ListGroupsV2(stream);
  if (!groups.ok()) return ToGrpcError(ctx, groups.status(), "");
  for (const auto& g : *groups) ToSubscriptionInfo(g, out->add_subscriptions());
  return grpc::Status::OK;
}

grpc::Status PersistentService::RestartSubsystem(grpc::ServerContext* ctx, const event_store::client::Empty*,
                                                 event_store::client::Empty*) {
  if (grpc::Status a = b_->Authorize(*ctx, Role::kAdmin, "Restarting the persistent subscriptions"); !a.ok()) return a;
  reads_->EndAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the persistent subscriptions were restarted"));
  return grpc::Status::OK;
}

}  // namespace esdb_grpc
