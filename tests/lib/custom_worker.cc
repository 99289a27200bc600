// A custom worker binary for pool_test: registers `shout` and runs the standard worker
// command line through fanout::worker_main (no SPMD, no plugin).
#include "fanout/fanout.h"

FANOUT_TASK("shout",
            [](const fanout::TaskChunk& chunk) { return std::string(chunk.data) + "!\n"; });

int main(int argc, char** argv) { return fanout::worker_main(argc, argv); }
