# A small lab of Linux network namespaces joined by a bridge, for multi-host tests on one
# machine. Sourced, not run; needs root (CAP_NET_ADMIN) and iproute2.
#
#   netns_lab_up PREFIX N   namespaces PREFIX-sw (a bridge), PREFIX-c (198.18.0.1) and
#                           PREFIX-w1..wN (198.18.0.11..), each with one veth to the bridge
#   netns_link PREFIX NODE up|down   cuts or restores NODE's link (a network partition)
#   netns_lab_down PREFIX   deletes every namespace of the lab (their links go with them)
#
# Addresses come from 198.18.0.0/15 (RFC 2544, set aside for network benchmarking), so no
# real network is ever a target. Nothing is created in the caller's own namespace.

netns_node_addr() {  # NODE -> address
  case "$1" in
    c) echo 198.18.0.1 ;;
    w*) echo "198.18.0.$((10 + ${1#w}))" ;;
  esac
}

netns_lab_up() {
  local prefix="$1" n="$2" node
  ip netns add "$prefix-sw" || return 1
  ip -n "$prefix-sw" link add br0 type bridge || return 1
  ip -n "$prefix-sw" link set br0 up
  for node in c $(seq -f 'w%g' 1 "$n"); do
    ip netns add "$prefix-$node" || return 1
    ip -n "$prefix-sw" link add "$node" type veth peer name eth0 netns "$prefix-$node" || return 1
    ip -n "$prefix-sw" link set "$node" master br0 up
    ip -n "$prefix-$node" addr add "$(netns_node_addr "$node")/24" dev eth0
    ip -n "$prefix-$node" link set eth0 up
    ip -n "$prefix-$node" link set lo up
  done
}

netns_link() {
  ip -n "$1-sw" link set "$2" "$3"
}

netns_lab_down() {
  local prefix="$1" ns
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^$prefix-" || true); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$ns" 2>/dev/null || true
  done
}
