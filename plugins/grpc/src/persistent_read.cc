#include "persistent_read.h"

#include <deque>
#include <optional>
#include <utility>
#include <vector>

#include "convert.h"
#include "errors.h"

namespace esdb_grpc {

namespace pspb = event_store::client::persistent_subscriptions;

class PersistentRead final : public grpc::ServerBidiReactor<pspb::ReadReq, pspb::ReadResp>, public EndableCall {
 public:
  PersistentRead(std::shared_ptr<Backend> backend, std::shared_ptr<CallRegistry> registry,
                 grpc::CallbackServerContext* ctx)
      : b_(std::move(backend)), registry_(std::move(registry)), ctx_(ctx) {
    if (!registry_->Add(this, static_cast<size_t>(b_->config.max_concurrent_calls))) {
      End(grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                       "too many persistent subscriptions open (max_concurrent_calls " +
                           std::to_string(b_->config.max_concurrent_calls) + ")"));
      return;
    }
    registered_ = true;
    if (b_->stopping.load()) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is stopping"));
      return;
    }
    StartRead(&req_);
  }

  // Ends the call with `s` (once; later calls do nothing).
  void End(const grpc::Status& s) override {
    bool finish_now = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      finish_now = EndLocked(s);
    }
    if (finish_now) Finish(s);
  }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client closed its side, or the call is gone
      End(grpc::Status::OK);
      return;
    }
    if (!have_options_) {
      HandleOptions();
    } else {
      HandleAckNack();
    }
    std::lock_guard<std::mutex> lock(mu_);
    if (!ending_) StartRead(&req_);
  }

  void OnWriteDone(bool ok) override {
    std::optional<grpc::Status> finish;
    bool write = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      writing_ = false;
      if (!ok) {
        const grpc::Status gone(grpc::StatusCode::CANCELLED, "the client went away");
        if (EndLocked(gone)) finish = gone;
      }
      if (!finish && pending_status_) {  // End came while this write was outstanding
        finish = std::move(pending_status_);
        pending_status_.reset();
      } else if (!ending_) {
        write = NextWriteLocked();
      }
    }
    if (finish) Finish(*finish);
    if (write) StartWrite(&current_);
  }

  void OnCancel() override { End(grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled")); }

  void OnDone() override {
    esdb::Subscription handle;
    {
      std::lock_guard<std::mutex> lock(mu_);
      handle = std::move(handle_);
    }
    handle.cancel();  // no handler of ours runs once this returns
    if (registered_) registry_->Remove(this);
    delete this;
  }

 private:
  // Marks the call ending; true when the caller must Finish(s) now (no write
  // outstanding), else the write's completion finishes it.
  bool EndLocked(const grpc::Status& s) {
    if (ending_) return false;
    ending_ = true;
    out_.clear();
    if (writing_) {
      pending_status_ = s;
      return false;
    }
    return true;
  }

  // Takes the next queued message into current_; true when a write must start.
  bool NextWriteLocked() {
    if (ending_ || writing_ || !connected_ || out_.empty()) return false;
    current_ = std::move(out_.front());
    out_.pop_front();
    writing_ = true;
    return true;
  }

  // Ends the call with the group service's error, with its trailers
  // (persistent-subscription-does-not-exist, ...; errors.h). `connecting`:
  // ConnectToGroup refused the consumer.
  void EndWithError(const esdb::Status& why, bool connecting = false) {
    bool finish_now = false;
    grpc::Status s;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ending_) return;
      s = connecting && why.code() == esdb::Code::kResourceExhausted ? MaxSubscribersReached(ctx_, why, stream_, group_)
                                                                     : GroupError(ctx_, why, stream_, group_);
      finish_now = EndLocked(s);
    }
    if (finish_now) Finish(s);
  }

  void InvalidArgument(const std::string& what) { End(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, what)); }

  void HandleOptions() {
    if (!req_.has_options()) {
      InvalidArgument("the first message of PersistentSubscriptions.Read must be options (stream, group), not " +
                      std::string(req_.has_ack() ? "an ack" : req_.has_nack() ? "a nack" : "an empty message"));
      return;
    }
    const auto& o = req_.options();
    have_options_ = true;
    if (o.stream_option_case() == pspb::ReadReq::Options::kAll) {
      stream_ = esdb::kAllStreamId;
    } else if (o.has_stream_identifier() && !o.stream_identifier().stream_name().empty()) {
      stream_ = o.stream_identifier().stream_name();
    } else {
      InvalidArgument("options name no stream (stream_identifier or all)");
      return;
    }
    group_ = o.group_name();
    if (group_.empty()) {
      InvalidArgument("options.group_name is empty");
      return;
    }
    if (o.buffer_size() < 0 || o.buffer_size() > 100000) {
      InvalidArgument("options.buffer_size " + std::to_string(o.buffer_size()) + " is out of range (1..100000)");
      return;
    }
    limit_ = o.buffer_size() == 0 ? 10 : static_cast<size_t>(o.buffer_size());
    structured_ = o.uuid_option().has_structured();
    auto subs = b_->subscriptions();
    if (!subs) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "the subscriptions service is not available (missing: notification)"));
      return;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ending_) return;
      pspb::ReadResp confirmation;
      confirmation.mutable_subscription_confirmation()->set_subscription_id(stream_ + "::" + group_);
      out_.push_back(std::move(confirmation));
    }
    esdb::ConsumerOptions co;
    co.name = "grpc " + ctx_->peer();
    co.in_flight_limit = limit_;
    co.on_messages = [this](const std::vector<esdb::PersistentMessage>& messages) { Deliver(messages); };
    co.on_dropped = [this](const esdb::Status& why) { Dropped(why); };
    auto connected = subs->ConnectToGroup(stream_, group_, std::move(co));
    if (!connected.ok()) {
      // A refused connect's kResourceExhausted: the group (its
      // max_subscriber_count, or the service's max_consumers_per_group) is full.
      EndWithError(connected.status(), /*connecting=*/true);
      return;
    }
    bool write = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      handle_ = std::move(connected).value();
      connected_ = true;
      write = NextWriteLocked();
    }
    if (write) StartWrite(&current_);
  }

  // Runs on a notification thread; must return at once.
  void Deliver(const std::vector<esdb::PersistentMessage>& messages) {
    std::vector<pspb::ReadResp> built(messages.size());
    for (size_t i = 0; i < messages.size(); ++i) {
      auto* re = built[i].mutable_event();
      ToRecordedEvent(*messages[i].event, structured_, re->mutable_event());
      re->set_commit_position(messages[i].event->position);
      re->set_retry_count(messages[i].retry_count);
    }
    bool write = false;
    bool finish_now = false;
    grpc::Status status;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (ending_) return;
      for (auto& m : built) out_.push_back(std::move(m));
      if (out_.size() > limit_ + 1) {  // + the confirmation
        status = grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                              "the consumer did not read its messages: more than its buffer_size (" +
                                  std::to_string(limit_) + ") waited to be sent; it was dropped");
        finish_now = EndLocked(status);
      } else {
        write = NextWriteLocked();
      }
    }
    if (finish_now) Finish(status);
    if (write) StartWrite(&current_);
  }

  // Runs on a notification thread when the group ends this consumer.
  void Dropped(const esdb::Status& why) {
    if (why.code() == esdb::Code::kCancelled) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the subscriptions service is stopping: " + why.message()));
      return;
    }
    EndWithError(why);
  }

  void HandleAckNack() {
    const bool ack = req_.has_ack();
    if (!ack && !req_.has_nack()) {
      InvalidArgument(req_.has_options() ? "options may only be the first message of PersistentSubscriptions.Read"
                                         : "a message with neither ack nor nack");
      return;
    }
    const auto& pb_ids = ack ? req_.ack().ids() : req_.nack().ids();
    std::vector<std::string> ids;
    ids.reserve(pb_ids.size());
    for (int i = 0; i < pb_ids.size(); ++i) {
      auto text = UuidText(pb_ids[i]);
      if (!text) {
        InvalidArgument(std::string(ack ? "ack" : "nack") + ".ids[" + std::to_string(i) + "] is not a UUID");
        return;
      }
      ids.push_back(std::move(*text));
    }
    auto subs = b_->subscriptions();
    if (!subs) {
      End(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                       "the subscriptions service is not available (missing: notification)"));
      return;
    }
    esdb::Result<esdb::AckResult> result = esdb::Status::OK();
    if (ack) {
      result = subs->Ack(stream_, group_, ids);
    } else {
      esdb::NackAction action = esdb::NackAction::kRetry;
      switch (req_.nack().action()) {
        case pspb::ReadReq::Nack::Park: action = esdb::NackAction::kPark; break;
        case pspb::ReadReq::Nack::Skip: action = esdb::NackAction::kSkip; break;
        case pspb::ReadReq::Nack::Stop:
          // The consumer stops: its unacked messages go back to the group
          // (without counting a retry) when the call ends.
          End(grpc::Status::OK);
          return;
        default: break;  // Retry, and Unknown as KurrentDB treats it
      }
      result = subs->Nack(stream_, group_, ids, action, req_.nack().reason());
    }
    if (!result.ok()) {
      EndWithError(result.status());
      return;
    }
    if (!result->unknown_ids.empty() && b_->logger) {
      // As KurrentDB: ids not in flight (already handled, timed out) are ignored.
      b_->logger->debug("grpc: {} of {}::{} ignored {} id(s) not in flight", ack ? "ack" : "nack", stream_, group_,
                        result->unknown_ids.size());
    }
  }

  const std::shared_ptr<Backend> b_;
  const std::shared_ptr<CallRegistry> registry_;
  grpc::CallbackServerContext* const ctx_;
  bool registered_ = false;

  // Only the reading side (OnReadDone, one at a time) touches these after
  // the options; Deliver reads structured_ and limit_, set before connecting.
  pspb::ReadReq req_;
  bool have_options_ = false;
  std::string stream_;
  std::string group_;
  size_t limit_ = 10;
  bool structured_ = false;

  std::mutex mu_;
  bool ending_ = false;     // End decided; nothing more is written
  bool writing_ = false;    // a write is outstanding (current_)
  bool connected_ = false;  // the group accepted the consumer (writes may start)
  std::optional<grpc::Status> pending_status_;  // Finish once the outstanding write completes
  std::deque<pspb::ReadResp> out_;              // to be written, in order
  pspb::ReadResp current_;                      // the message being written
  esdb::Subscription handle_;
};

grpc::ServerBidiReactor<pspb::ReadReq, pspb::ReadResp>* StartPersistentRead(std::shared_ptr<Backend> backend,
                                                                          std::shared_ptr<CallRegistry> registry,
                                                                          grpc::CallbackServerContext* ctx) {
  return new PersistentRead(std::move(backend), std::move(registry), ctx);
}

}  // namespace esdb_grpc
