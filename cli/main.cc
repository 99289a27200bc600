// fanout: the coordinator's command line. Everything lives in the library (cli.h).
#include <signal.h>

#include "cli/cli.h"
#include "common/allocator_policy.h"
#include "common/nss_policy.h"

int main(int argc, char** argv) {
  signal(SIGPIPE, SIG_IGN);  // a closed stdout or socket is an error value, not a death
  fanout::KeepFreedMemory();
  fanout::LookUpProtocolsInFiles();
  return fanout::RunCli(argc, argv);
}
