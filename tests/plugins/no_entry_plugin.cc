// A shared library that is not a fanout plugin: it exports no fanout_plugin entry point.
extern "C" __attribute__((visibility("default"))) int not_a_fanout_plugin(void) { return 42; }
