// A plugin built for a newer SDK minor than the host has: must be refused.
#include <esdb/plugin.h>

namespace {
esdb::Subsystem* CreateNothing() { return nullptr; }
}  // namespace

extern "C" BOOST_SYMBOL_EXPORT uint32_t esdb_sdk_api_version() {
  return esdb::PackApiVersion(ESDB_SDK_API_MAJOR, ESDB_SDK_API_MINOR + 1);
}
extern "C" BOOST_SYMBOL_EXPORT void esdb_sdk_run_io(boost::asio::io_context* io) { io->run(); }
BOOST_DLL_ALIAS(CreateNothing, esdb_create_future)
