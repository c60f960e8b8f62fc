// event_store.client.persistent_subscriptions.PersistentSubscriptions on
// the notification service's persistent groups (esdb/subscriptions.h):
// Create, Update, Delete, GetInfo, List, ReplayParked and RestartSubsystem
// on gRPC's synchronous server, Read on its callback API
// (persistent_read.h). A stream's groups and $all's (with its filter).
// Every method may run concurrently with the others.
#pragma once

#include <memory>

#include "backend.h"
#include "persistent.grpc.pb.h"
#include "persistent_convert.h"
#include "persistent_read.h"

namespace esdb_grpc {

namespace pspb = event_store::client::persistent_subscriptions;

class PersistentService final
    : public pspb::PersistentSubscriptions::WithCallbackMethod_Read<pspb::PersistentSubscriptions::Service> {
 public:
  explicit PersistentService(std::shared_ptr<Backend> backend)
      : b_(std::move(backend)), reads_(std::make_shared<CallRegistry>()) {}

  grpc::Status Create(grpc::ServerContext* ctx, const pspb::CreateReq* req, pspb::CreateResp* out) override;
  grpc::Status Update(grpc::ServerContext* ctx, const pspb::UpdateReq* req, pspb::UpdateResp* out) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const pspb::DeleteReq* req, pspb::DeleteResp* out) override;
  grpc::ServerBidiReactor<pspb::ReadReq, pspb::ReadResp>* Read(grpc::CallbackServerContext* ctx) override;
  grpc::Status GetInfo(grpc::ServerContext* ctx, const pspb::GetInfoReq* req, pspb::GetInfoResp* out) override;
  grpc::Status ReplayParked(grpc::ServerContext* ctx, const pspb::ReplayParkedReq* req,
                            pspb::ReplayParkedResp* out) override;
  grpc::Status List(grpc::ServerContext* ctx, const pspb::ListReq* req, pspb::ListResp* out) override;
  // Ends every open Read (UNAVAILABLE; the clients resubscribe); the groups
  // themselves live in the notification service and are not restarted.
  grpc::Status RestartSubsystem(grpc::ServerContext* ctx, const event_store::client::Empty* req,
                                event_store::client::Empty* out) override;

  // Graceful stop, before the server's Shutdown: ends every open Read.
  void EndReads(const grpc::Status& status) { reads_->EndAll(status); }

 private:
  // Create (`create`) or Update of the group `r` names (or r's error).
  grpc::Status CreateOrUpdate(grpc::ServerContext* ctx, esdb::Result<GroupRequest> r, bool create);
  // The service, or UNAVAILABLE naming the missing subsystem.
  std::shared_ptr<esdb::SubscriptionsV2> Subs(grpc::Status* error) const;
  // The same for a request about `stream`: INVALID_ARGUMENT when it is empty.
  std::shared_ptr<esdb::SubscriptionsV2> SubsFor(const std::string& stream, grpc::Status* error) const;

  std::shared_ptr<Backend> b_;
  std::shared_ptr<CallRegistry> reads_;
};

}  // namespace esdb_grpc
