// A plugin built against today's SDK but with libstdc++'s old string ABI
// (-D_GLIBCXX_USE_CXX11_ABI=0, see CMakeLists.txt): its std::string is not
// the host's, so every Context call would corrupt memory. The host must
// refuse it at load, from its ABI tag, before calling its factory.
#include <esdb/plugin.h>

namespace {

class Never : public esdb::Subsystem {
 public:
  esdb::Status Start(esdb::Context&) override { return esdb::Status::Internal("must never be created"); }
  esdb::Status Stop() override { return esdb::Status::OK(); }
};

esdb::Subsystem* CreateNever() { return new Never(); }

}  // namespace

ESDB_PLUGIN(CreateNever, esdb_create_old_string_abi)
