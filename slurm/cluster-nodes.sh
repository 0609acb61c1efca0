# shellcheck shell=bash
# A multi-node SLURM test cluster on one machine; sourced by cluster.sh, not run alone.
#
#   slurm/cluster.sh start DIR --nodes N [CPUS]   # nodes node1..nodeN, CPUS each (default 2)
#   slurm/cluster.sh kill-node DIR NAME           # hard loss of node NAME
#   slurm/cluster.sh revive-node DIR NAME         # a fresh node NAME in its place
#   slurm/cluster.sh status DIR / stop DIR
#
# Each node is a Linux network namespace with its own address, host name, mount
# namespace and slurmd; slurmctld has a namespace of its own; one munged in the root
# namespace serves them all through its socket file. The namespaces talk over a bridge in
# the root namespace with a private /24 (10.77.ID.0/24, the first ID from 0 up that no
# other cluster and no route on this machine uses) and no route anywhere else, so the
# cluster's traffic stays on this machine. Names carry the ID: namespaces and their veth
# ends ckptID-node1.., ckptID-ctl, the bridge ckptID-br (its alias names DIR).
#
# In every node's mount namespace: DIR/nodes/NAME is bound over DIR/nodelocal (node-local
# storage, TmpFS), /dev/shm is a private tmpfs, DIR/hosts is bound over /etc/hosts.
# Everything else, DIR/shared in particular, is the shared file system.
#
# slurmd runs under `nsenter --net=... unshare --uts --mount`, not `ip netns exec`: the
# latter remounts /sys, hiding /sys/fs/cgroup, and slurmd then fails to start.
# DIR/net.conf records the names; stop, status, kill-node and revive-node read it.

is_multinode() { [ -f "$1/net.conf" ]; }

need_netns_tools() {
  local b
  for b in ip nsenter unshare mount hostname; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || [ -x "/sbin/$b" ] ||
      die "$b not found: the multi-node cluster needs iproute2 (ip) and util-linux (nsenter, unshare, mount)"
  done
  ip netns list >/dev/null 2>&1 || die "'ip netns' does not work here (no network namespace support?)"
}

# load_net DIR: reads DIR/net.conf (NET_ID, NET_PREFIX, BRIDGE, NS_PREFIX, NODES, CPUS).
load_net() {
  local d=$1
  is_multinode "$d" || die "$d holds no multi-node cluster (no net.conf)"
  # shellcheck disable=SC1091
  . "$d/net.conf"
}

# bridge_owned DIR: the bridge exists and was made for DIR (its alias says so).
bridge_owned() {
  [ "$(cat "/sys/class/net/$BRIDGE/ifalias" 2>/dev/null)" = "ckpt cluster $1" ]
}

check_node_name() {
  case " $NODES " in
    *" $1 "*) ;;
    *) die "no node '$1' in this cluster (nodes: $NODES)" ;;
  esac
}

# ns_pids NS: pids of the processes in network namespace NS (none if it does not exist).
ns_pids() {
  [ -e "/run/netns/$1" ] || return 0
  ip netns pids "$1" 2>/dev/null || true
}

# kill_ns NS: SIGKILL every process in NS until none is left; prints how many it killed.
kill_ns() {
  local ns=$1 pids killed=0 i
  for i in $(seq 100); do
    pids=$(ns_pids "$ns")
    [ -z "$pids" ] && break
    [ "$i" = 1 ] && killed=$(echo "$pids" | wc -w)
    # shellcheck disable=SC2086
    kill -KILL $pids 2>/dev/null || true
    sleep 0.1
  done
  [ -z "$(ns_pids "$ns")" ] || die "processes left in namespace $ns after SIGKILL: $(ns_pids "$ns" | tr '\n' ' ')"
  echo "$killed"
}

# add_ns NAME HOST: a namespace NS_PREFIX+NAME with lo and eth0 (NET_PREFIX.HOST/24) up,
# its veth peer (same name as the namespace) on the bridge.
add_ns() {
  local ns=$NS_PREFIX$1 addr=$NET_PREFIX.$2
  ip netns add "$ns"
  ip link add "$ns" type veth peer name eth0 netns "$ns"
  ip link set "$ns" master "$BRIDGE"
  ip link set "$ns" up
  ip -n "$ns" addr add "$addr/24" dev eth0
  ip -n "$ns" link set lo up
  ip -n "$ns" link set eth0 up
  # A socket whose process is gone (killed with a node) keeps retrying to send its FIN
  # to a peer that may be cut off; it holds the namespace, and so the veth, for minutes
  # with the default (8 retries). One retry lets stop remove everything within seconds.
  nsenter --net="/run/netns/$ns" sh -c 'echo 1 > /proc/sys/net/ipv4/tcp_orphan_retries'
}

# in_node_ns NAME CMD...: runs CMD (a daemon that forks) as host NAME in its namespaces.
# A node gets its node-local directory and a private /dev/shm; every namespace gets the
# cluster's /etc/hosts.
in_node_ns() {
  local name=$1 d=$2
  shift 2
  local local_dir=""
  [ "$name" = ctl ] || local_dir=$d/nodes/$name
  # shellcheck disable=SC2016 # the inner script expands its own arguments
  nsenter --net="/run/netns/$NS_PREFIX$name" unshare --uts --mount --propagation private sh -c '
    set -e
    name=$1 local_dir=$2 d=$3
    shift 3
    hostname "$name"
    if [ -n "$local_dir" ]; then
      mount --bind "$local_dir" "$d/nodelocal"
      mount -t tmpfs -o mode=1777 tmpfs /dev/shm
    fi
    mount --bind "$d/hosts" /etc/hosts
    exec "$@"' sh "$name" "$local_dir" "$d" "$@"
}

start_slurmd() {
  local d=$1 name=$2
  rm -rf "${d:?}/nodes/$name" "${d:?}/spool/$name"
  mkdir -m 0700 "$d/nodes/$name"
  rm -f "$d/run/slurmd.$name.pid"
  in_node_ns "$name" "$d" /usr/sbin/slurmd -N "$name" -f "$d/slurm.conf" ||
    die "slurmd of $name failed; see $d/log/slurmd.$name.log"
}

# wait_idle DIR SECONDS NODE...: until sinfo reports every NODE idle.
wait_idle() {
  local d=$1 secs=$2 i n state ok
  shift 2
  for i in $(seq $((secs * 5))); do
    ok=1
    for n in "$@"; do
      state=$(SLURM_CONF=$d/slurm.conf sinfo -h -n "$n" -o %T 2>/dev/null | head -1 || true)
      [ "$state" = idle ] || { ok=0; break; }
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.2
  done
  echo "cluster.sh: node $n is '$state', not idle after $secs s" >&2
  return 1
}

# pick_net DIR: takes the first free ID: no namespace or link of that name, no route to
# its range, and the bridge could be created (creating it is the lock between two starts).
pick_net() {
  local d=$1 id out routes
  for id in $(seq 0 63); do
    ls /run/netns/ckpt"$id"-* >/dev/null 2>&1 && continue
    routes=$(ip -4 -o route show to match "10.77.$id.1" | grep -v '^default' || true)
    [ -z "$routes" ] || continue
    # links of that ID (a stopped cluster's veths can linger while the kernel frees them)
    out=$(ip -o link show | grep -oE " ckpt$id-[a-z0-9]+[:@]" || true)
    [ -z "$out" ] || continue
    if ! out=$(ip link add "ckpt$id-br" type bridge 2>&1); then
      ip link show "ckpt$id-br" >/dev/null 2>&1 && continue  # another start took it just now
      die "cannot create a bridge ($out): the multi-node cluster needs bridge and veth support"
    fi
    ip link set "ckpt$id-br" alias "ckpt cluster $d"
    NET_ID=$id
    return 0
  done
  die "no free network for a multi-node cluster (10.77.0-63.0/24 all taken; stop one: ip link show type bridge)"
}

cmd_start_nodes() {
  local d=$1 n=$2 cpus=$3 k
  case $n in '' | *[!0-9]*) die "--nodes needs a number, not '$n'" ;; esac
  if [ "$n" -lt 1 ] || [ "$n" -gt 50 ]; then die "--nodes must be 1 to 50"; fi
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  if is_multinode "$d"; then
    load_net "$d"
    ! bridge_owned "$d" || die "a multi-node cluster is already running in $d (stop it first)"
  fi
  if pid_alive "$d/slurmctld.pid" || pid_alive "$d/munged.pid"; then
    die "a cluster is already running in $d (stop it first)"
  fi
  need_slurm_and_root
  need_netns_tools
  rm -f "$d/net.conf"
  pick_net "$d"
  NET_PREFIX=10.77.$NET_ID BRIDGE=ckpt$NET_ID-br NS_PREFIX=ckpt$NET_ID- NODES="" CPUS=$cpus
  for k in $(seq "$n"); do NODES="$NODES${NODES:+ }node$k"; done
  cat > "$d/net.conf" <<NET
NET_ID=$NET_ID
NET_PREFIX=$NET_PREFIX
BRIDGE=$BRIDGE
NS_PREFIX=$NS_PREFIX
NODES="$NODES"
CPUS=$CPUS
NET
  # From here on a failure takes down what was made.
  START_DIR=$d
  trap 'echo "cluster.sh: start failed, stopping what was started" >&2; cmd_stop_nodes "$START_DIR" >&2 || true' EXIT

  ip addr add "$NET_PREFIX.1/24" dev "$BRIDGE"
  ip link set "$BRIDGE" up
  add_ns ctl 2
  for k in $(seq "$n"); do add_ns "node$k" $((10 + k)); done
  {
    echo "127.0.0.1 localhost"
    echo "$NET_PREFIX.2 ctl"
    for k in $(seq "$n"); do echo "$NET_PREFIX.$((10 + k)) node$k"; done
  } > "$d/hosts"

  mkdir -p "$d/state" "$d/spool" "$d/log" "$d/run" "$d/nodes" "$d/nodelocal" "$d/shared"
  start_munged "$d"
  write_aux_files "$d"
  local ctl_port d_port
  ctl_port=$(free_port)
  d_port=$(free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  {
    echo "# Multi-node test cluster (network namespaces) written by slurm/cluster.sh"
    echo "ClusterName=ckpt"
    echo "SlurmctldHost=ctl($NET_PREFIX.2)"
    conf_common "$d" "$ctl_port" "$d_port"
    cat <<CONF
SlurmdPidFile=$d/run/slurmd.%n.pid
SlurmdLogFile=$d/log/slurmd.%n.log
TmpFS=$d/nodelocal
SlurmdTimeout=10
MessageTimeout=5
CONF
    for k in $(seq "$n"); do
      echo "NodeName=node$k NodeAddr=$NET_PREFIX.$((10 + k)) NodeHostname=node$k CPUs=$cpus State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=node[1-$n] Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO"
  } > "$d/slurm.conf"
  in_node_ns ctl "$d" /usr/sbin/slurmctld -i -f "$d/slurm.conf" || die "slurmctld failed; see $d/log/slurmctld.log"
  for k in $(seq "$n"); do start_slurmd "$d" "node$k"; done
  # shellcheck disable=SC2086
  if ! wait_idle "$d" 60 $NODES; then
    tail -n 20 "$d/log/slurmctld.log" "$d"/log/slurmd.*.log >&2 || true
    exit 1
  fi
  trap - EXIT
  echo "cluster.sh: SLURM cluster up in $d: nodes $NODES on $NET_PREFIX.0/24 (bridge $BRIDGE), slurmctld port $ctl_port; source $d/env"
}

# kill-node: the node is cut off first (its veth goes down, so peers hear nothing more,
# as from a node that lost power), then every process in its namespace is SIGKILLed and
# its node-local storage wiped.
cmd_kill_node() {
  local d=$1 name=$2 ns killed
  d=$(cd "$d" && pwd)
  load_net "$d"
  check_node_name "$name"
  bridge_owned "$d" || die "the cluster in $d is not running"
  ns=$NS_PREFIX$name
  ip link set "$ns" down
  killed=$(kill_ns "$ns")
  rm -rf "${d:?}/nodes/$name"
  rm -f "$d/run/slurmd.$name.pid"
  echo "cluster.sh: node $name lost: link down, $killed processes killed, node-local storage wiped"
}

# revive-node: link up, a fresh empty node-local directory and spool, a new slurmd; waits
# until SLURM reports the node idle (ReturnToService=2 takes it back).
cmd_revive_node() {
  local d=$1 name=$2 ns
  d=$(cd "$d" && pwd)
  load_net "$d"
  check_node_name "$name"
  bridge_owned "$d" || die "the cluster in $d is not running"
  ns=$NS_PREFIX$name
  [ -z "$(ns_pids "$ns")" ] || die "node $name is running (kill-node it first)"
  ip link set "$ns" up
  start_slurmd "$d" "$name"
  wait_idle "$d" 60 "$name" || exit 1
  echo "cluster.sh: node $name revived (empty node-local storage) and idle"
}

cmd_status_nodes() {
  local d=$1 name pidf
  d=$(cd "$d" && pwd)
  load_net "$d"
  for name in munged slurmctld; do
    if pid_alive "$d/$name.pid"; then echo "$name running (pid $(cat "$d/$name.pid"))"; else echo "$name stopped"; fi
  done
  for name in $NODES; do
    pidf=$d/run/slurmd.$name.pid
    if pid_alive "$pidf"; then echo "slurmd $name running (pid $(cat "$pidf"))"; else echo "slurmd $name stopped"; fi
  done
  if bridge_owned "$d"; then
    echo "network $NET_PREFIX.0/24, bridge $BRIDGE"
    ip -br link show master "$BRIDGE"
  else
    echo "network down"
  fi
  if pid_alive "$d/slurmctld.pid"; then SLURM_CONF=$d/slurm.conf sinfo -N || true; fi
}

# stop: jobs, daemons by pid file, then whatever is left in the namespaces, the
# namespaces, veths and bridge; fails if anything of this cluster is left.
cmd_stop_nodes() {
  local d=$1 name ns killed left i
  d=$(cd "$d" && pwd)
  load_net "$d"
  if pid_alive "$d/slurmctld.pid"; then
    SLURM_CONF=$d/slurm.conf timeout 10 scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    SLURM_CONF=$d/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
    for i in $(seq 30); do
      [ -z "$(SLURM_CONF=$d/slurm.conf timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  for name in $NODES; do stop_pidfile "$d/run/slurmd.$name.pid" "slurmd $name"; done
  stop_pidfile "$d/slurmctld.pid" slurmctld
  stop_pidfile "$d/munged.pid" munged
  # The namespaces are ours only while the bridge says so (another cluster may have
  # taken the same ID after this one was stopped).
  bridge_owned "$d" || return 0
  for name in ctl $NODES; do
    ns=$NS_PREFIX$name
    killed=$(kill_ns "$ns")
    [ "$killed" = 0 ] || echo "cluster.sh: killed $killed processes left in namespace $ns" >&2
    [ ! -e "/run/netns/$ns" ] || ip netns del "$ns"
    # Deleting the namespace takes its veth pair along, in the background: the host end
    # may or may not be there still.
    ip link del "$ns" 2>/dev/null || true
  done
  for i in $(seq 150); do
    left=$( { ip netns list | grep -oE "^$NS_PREFIX(ctl|node[0-9]+)( |$)" || true
              ip -o link show | grep -oE " $NS_PREFIX(ctl|node[0-9]+)[:@]" || true; } | tr -d ':@' | tr '\n' ' ')
    [ -z "$left" ] && break
    sleep 0.1
  done
  [ -z "$left" ] || die "namespaces or links $left are still there after 15 s"
  ip link del "$BRIDGE"
}
