# Shared by scripts/demo and scripts/test: install missing Debian packages, then build.
# Sourced, not run. Idempotent: with everything present it installs nothing and the build
# is incremental.

FANOUT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
FANOUT_BUILD="${FANOUT_BUILD:-$FANOUT_ROOT/build}"

# Build tools, libraries (headers) and the programs the tests run.
FANOUT_PACKAGES=(
  g++ cmake make pkg-config
  libzmq3-dev cppzmq-dev libmsgpack-cxx-dev libspdlog-dev libcli11-dev
  nlohmann-json3-dev libgtest-dev libgmock-dev libgmp-dev libbenchmark-dev libxxhash-dev
  libsodium-dev libcpp-httplib-dev
  coreutils gawk procps iproute2 python3 time
  # The dashboard tests: a real headless browser, Prometheus's promtool, curl (as nobody).
  chromium prometheus curl
  # The cluster tests (ctest -L cluster): a real sshd and a real Slurm in namespace hosts.
  openssh-server openssh-client slurmctld slurmd slurm-client munge
)

fanout_install_packages() {
  local missing=()
  for pkg in "${FANOUT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  echo "==> installing: ${missing[*]}"
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "need root (or sudo) to install: ${missing[*]}" >&2; return 1; }
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# fanout_build BUILD_TYPE [extra cmake args...]
fanout_build() {
  local type="$1"; shift
  echo "==> building ($type) in $FANOUT_BUILD"
  cmake -S "$FANOUT_ROOT" -B "$FANOUT_BUILD" -DCMAKE_BUILD_TYPE="$type" "$@" >/dev/null
  cmake --build "$FANOUT_BUILD" -j "$(nproc)"
}
