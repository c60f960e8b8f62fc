// A shared library that is not an esdb plugin (no API version symbol).
extern "C" __attribute__((visibility("default"))) int not_a_plugin_answer() { return 42; }
