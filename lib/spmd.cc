// fanout::init and fanout::worker_main (fanout/worker.h).
#include "lib/spmd.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "fanout/worker.h"
#include "worker/worker_cli.h"

namespace fanout {
namespace {

std::string& Self() {
  static std::string self;
  return self;
}

std::string ProgramName(char** argv) {
  return argv && argv[0] ? std::filesystem::path(argv[0]).filename().string() : "fanout-worker";
}

}  // namespace

std::string SelfWorkerBinary() {
  if (!Self().empty()) return Self();
  const char* env = std::getenv("FANOUT_WORKER");
  if (env && *env) return "";  // FindWorkerBinary honours it
  // An installed library finds the fanout-worker installed with it: LIBDIR/../bin.
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&SelfWorkerBinary), &info) && info.dli_fname) {
    auto candidate =
        std::filesystem::path(info.dli_fname).parent_path().parent_path() / "bin" / "fanout-worker";
    if (access(candidate.c_str(), X_OK) == 0) return candidate.string();
  }
  return "";
}

int worker_main(int argc, char** argv) { return WorkerMain(argc, argv, ProgramName(argv)); }

void init(int argc, char** argv) {
  if (argc >= 2 && std::strcmp(argv[1], "--connect") == 0) std::exit(worker_main(argc, argv));
  if (argc >= 2 && std::strcmp(argv[1], "--fanout-worker") == 0) {
    std::vector<char*> rest{argv[0]};
    rest.insert(rest.end(), argv + 2, argv + argc);
    rest.push_back(nullptr);
    std::exit(worker_main(argc - 1, rest.data()));
  }
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (!ec) Self() = exe.string();
}

}  // namespace fanout
