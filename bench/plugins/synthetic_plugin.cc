// A synthetic subsystem for the startup benchmark: Start() takes
// config.start_ms milliseconds (blocking, like opening a database), then
// reports ready.
#include <chrono>
#include <thread>

#include <esdb/plugin.h>

namespace {

class SyntheticSubsystem : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context& ctx) override {
    std::this_thread::sleep_for(std::chrono::milliseconds(ctx.Config().value("start_ms", 0)));
    ctx.ReportReady();
    return esdb::Status::OK();
  }
  esdb::Status Stop() override { return esdb::Status::OK(); }
};

esdb::Subsystem* CreateSynthetic() { return new SyntheticSubsystem(); }

}  // namespace

ESDB_PLUGIN(CreateSynthetic, esdb_create_synthetic)
