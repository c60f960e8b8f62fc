// event_store.client.streams.Streams on the store and notification
// services: Read (stream and $all, both directions, filters, catch-up then
// live subscriptions), Append, BatchAppend, Delete, Tombstone, and stream
// metadata through "$$<stream>" (metadata_stream.h). Append and
// BatchAppend run on gRPC's callback API (no thread per call: an append
// waits for its group commit without holding one); gRPC's synchronous
// server runs each other call on one of its threads. Every method may run concurrently with the others.
// Read is served as a bidi stream on the server's side (the wire does not
// tell them apart), so that its status is sent only after the client ended
// its side: see StreamedRead.
#pragma once

#include <memory>

#include "backend.h"
#include "call_registry.h"
#include "streams.grpc.pb.h"

namespace esdb_grpc {

namespace spb = event_store::client::streams;

// Streams.Read's call: its one request, then its answers.
using ReadCall = grpc::ServerReaderWriter<spb::ReadResp, spb::ReadReq>;

class StreamsService final
    : public spb::Streams::WithCallbackMethod_Append<spb::Streams::WithCallbackMethod_BatchAppend<spb::Streams::Service>> {
 public:
  explicit StreamsService(std::shared_ptr<Backend> backend);

  // Ends the open BatchAppend calls (a stop): each once its appends in
  // progress are answered, with `status`.
  void EndCalls(const grpc::Status& status) { calls_->EndAll(status); }

  // Reads the call's ReadReq, answers it, then waits for the client to end
  // its side of the call (at once for every client: it sends one request)
  // before the status goes out. A server that finishes first also resets
  // the stream (HTTP/2 RST_STREAM with NO_ERROR), and the Kurrent client's
  // reads (its Rust bridge) fail with UnavailableError when that reset
  // overtakes their reading of the answer. A second ReadReq on the call is
  // INVALID_ARGUMENT.
  grpc::Status StreamedRead(grpc::ServerContext* ctx, ReadCall* call);
  grpc::ServerReadReactor<spb::AppendReq>* Append(grpc::CallbackServerContext* ctx, spb::AppendResp* out) override;
  grpc::ServerBidiReactor<spb::BatchAppendReq, spb::BatchAppendResp>* BatchAppend(grpc::CallbackServerContext* ctx) override;
  grpc::Status Delete(grpc::ServerContext* ctx, const spb::DeleteReq* req, spb::DeleteResp* out) override;
  grpc::Status Tombstone(grpc::ServerContext* ctx, const spb::TombstoneReq* req, spb::TombstoneResp* out) override;

 private:
  friend class AppendCall;
  friend class BatchAppendCall;
  // One ReadReq's answer (StreamedRead).
  grpc::Status ReadOne(grpc::ServerContext* ctx, const spb::ReadReq& req, ReadCall* out);
  grpc::Status ReadStream(grpc::ServerContext* ctx, const spb::ReadReq::Options& o, ReadCall* out);
  grpc::Status ReadAll(grpc::ServerContext* ctx, const spb::ReadReq::Options& o, ReadCall* out);
  grpc::Status SubscribeStream(grpc::ServerContext* ctx, const spb::ReadReq::Options& o,
                               ReadCall* out);
  grpc::Status SubscribeAll(grpc::ServerContext* ctx, const spb::ReadReq::Options& o,
                            ReadCall* out);
  grpc::Status DeleteCommon(grpc::ServerContext* ctx, const std::string& stream, const esdb::ExpectedVersion& expected,
                            bool hard);
  // The outcome of one append (Append and BatchAppend share it): ok with the
  // result, or the error (wrong expected version included).
  esdb::Result<esdb::AppendResult> DoAppend(const std::string& stream, const esdb::ExpectedVersion& expected,
                                            std::vector<esdb::ProposedEvent> events);
  // Why a write to `stream` is refused for a caller with `role`; OK when allowed.
  esdb::Status CheckWrite(const std::string& stream, bool hard_delete, Role role) const;

  std::shared_ptr<Backend> b_;
  std::shared_ptr<CallRegistry> calls_;  // the open BatchAppend calls
};

}  // namespace esdb_grpc
