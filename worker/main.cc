// fanout-worker: connects to a coordinator and runs chunks until told to stop. The command
// line and start-up live in worker_cli.cc, shared with fanout::worker_main.
#include "worker/worker_cli.h"

int main(int argc, char** argv) { return fanout::WorkerMain(argc, argv, "fanout-worker"); }
