#include "reply_funnel.h"

#include <boost/asio/post.hpp>

#include "session.h"

namespace esdb_gateway {

void ReplyFunnel::Push(std::shared_ptr<Session> session, Response response) {
  bool post = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.emplace_back(std::move(session), std::move(response));
    post = !drain_posted_;
    drain_posted_ = true;
  }
  if (post) boost::asio::post(io_, [self = shared_from_this()] { self->Drain(); });
}

void ReplyFunnel::Clear() {
  std::vector<std::pair<std::shared_ptr<Session>, Response>> dropped;
  std::lock_guard<std::mutex> lock(mu_);
  dropped.swap(queue_);
}

void ReplyFunnel::Drain() {
  std::vector<std::pair<std::shared_ptr<Session>, Response>> batch;
  {
    std::lock_guard<std::mutex> lock(mu_);
    batch.swap(queue_);
    drain_posted_ = false;
  }
  for (auto& [session, response] : batch) session->Deliver(std::move(response));
}

}  // namespace esdb_gateway
