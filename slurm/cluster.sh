#!/bin/bash
# Start and stop a real one-machine SLURM cluster (munged, slurmctld, slurmd from
# Debian's slurm-wlm/munge), without systemd, in its own directory with its own ports.
#
#   slurm/cluster.sh start DIR [CPUS]   # writes DIR/slurm.conf, starts the daemons,
#                                       # waits until the node is idle
#   source DIR/env                      # sets SLURM_CONF for sbatch/squeue/scontrol
#   slurm/cluster.sh stop DIR           # stops the daemons by their pid files
#   slurm/cluster.sh status DIR
#
#   slurm/cluster.sh start DIR --nodes N [CPUS]   # N nodes node1..nodeN, each in its own
#                                       # network namespace (see cluster-nodes.sh)
#   slurm/cluster.sh kill-node DIR NAME     # hard loss of one node of such a cluster
#   slurm/cluster.sh revive-node DIR NAME   # a fresh node in its place
#
# Needs root (SlurmUser=root, slurmd runs jobs as the submitting user). Settings follow
# ../docs/slurm.md: cred_expire=10 so that requeued jobs may start again after ~11 s,
# KillWait=5, JobRequeue=1, ReturnToService=2, a fast scheduler loop.
set -euo pipefail

die() { echo "cluster.sh: $*" >&2; exit 1; }

free_port() {
  /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pid_alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pidfile FILE NAME: SIGTERM the process in FILE, SIGKILL after 10 s.
stop_pidfile() {
  local f=$1 name=$2 pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "cluster.sh: $name ($pid) ignored SIGTERM, sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  rm -f "$f"
}

cmd_stop() {
  local d=$1
  [ -d "$d" ] || die "no cluster directory $d"
  # Jobs first, so that slurmd does not leave job processes behind.
  if pid_alive "$d/slurmctld.pid" && [ -f "$d/slurm.conf" ]; then
    SLURM_CONF=$d/slurm.conf timeout 10 scancel --full --signal=KILL --user="$(id -un)" 2>/dev/null || true
    SLURM_CONF=$d/slurm.conf timeout 10 scancel --user="$(id -un)" 2>/dev/null || true
    # Let slurmd and slurmstepd finish the cancelled jobs before they go away.
    local i
    for i in $(seq 30); do
      [ -z "$(SLURM_CONF=$d/slurm.conf timeout 5 squeue -h -t R,CG -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_pidfile "$d/slurmd.pid" slurmd
  stop_pidfile "$d/slurmctld.pid" slurmctld
  stop_pidfile "$d/munged.pid" munged
}

cmd_status() {
  local d=$1 n
  for n in munged slurmctld slurmd; do
    if pid_alive "$d/$n.pid"; then echo "$n running (pid $(cat "$d/$n.pid"))"; else echo "$n stopped"; fi
  done
  if pid_alive "$d/slurmctld.pid"; then SLURM_CONF=$d/slurm.conf sinfo || true; fi
}

need_slurm_and_root() {
  local b
  for b in munged mungekey slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found; install slurm-wlm and munge"
  done
  [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
}

# start_munged DIR: one munged with its own key, socket, pid and seed files.
start_munged() {
  local d=$1
  mkdir -p "$d/munge" "$d/log"
  chmod 700 "$d/munge"
  if [ ! -s "$d/munge/munge.key" ]; then
    /usr/sbin/mungekey -c -k "$d/munge/munge.key" >/dev/null 2>&1 || \
      dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 2>/dev/null
  fi
  chmod 600 "$d/munge/munge.key"
  /usr/sbin/munged --force --socket="$d/munge/munge.sock" --key-file="$d/munge/munge.key" \
    --pid-file="$d/munged.pid" --seed-file="$d/munge/munge.seed" \
    --log-file="$d/log/munged.log" || die "munged failed to start; see $d/log/munged.log"
}

# conf_common DIR CTL_PORT SLURMD_PORT: the slurm.conf lines both kinds of cluster share
# (everything but the controller address, per-node files, timeouts and the nodes).
conf_common() {
  local d=$1 ctl_port=$2 d_port=$3
  # Job ids differ between clusters on one machine: srun --mpi=pmix keys its temp
  # directories in /tmp on the job id, so two clusters both running job 1 would collide.
  cat <<CONF
FirstJobId=$(( (RANDOM % 30000 + 1) * 1000 ))
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.sock,cred_expire=10
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmctldDebug=info
SlurmdDebug=info
PlugStackConfig=$d/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
SlurmdParameters=config_overrides
ReturnToService=2
KillWait=5
MinJobAge=300
JobRequeue=1
MpiDefault=none
MailProg=/bin/true
SlurmctldTimeout=30
InactiveLimit=0
Waittime=0
CONF
}

# write_aux_files DIR: plugstack.conf, cgroup.conf and env.
write_aux_files() {
  local d=$1
  : > "$d/plugstack.conf"
  cat > "$d/cgroup.conf" <<CG
CgroupPlugin=cgroup/v1
CG
  cat > "$d/env" <<ENV
# source this file to talk to the ckpt test cluster in $d
export SLURM_CONF=$d/slurm.conf
ENV
}

cmd_start() {
  local d=$1 cpus=${2:-$(nproc)}
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  if pid_alive "$d/slurmctld.pid" || pid_alive "$d/slurmd.pid" || pid_alive "$d/munged.pid"; then
    die "a cluster is already running in $d (stop it first)"
  fi
  need_slurm_and_root
  rm -f "$d/net.conf"  # a multi-node cluster that was here before is stopped
  local host node ctl_port d_port
  host=$(hostname -s)
  node=${CKPT_SLURM_NODE:-ckptnode}
  ctl_port=$(free_port)
  d_port=$(free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
  start_munged "$d"
  write_aux_files "$d"
  {
    echo "# One-machine test cluster written by slurm/cluster.sh"
    echo "ClusterName=ckpt"
    echo "SlurmctldHost=$host(127.0.0.1)"
    conf_common "$d" "$ctl_port" "$d_port"
    cat <<CONF
SlurmdPidFile=$d/slurmd.pid
SlurmdLogFile=$d/log/slurmd.log
SlurmdTimeout=60
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  } > "$d/slurm.conf"
  export SLURM_CONF=$d/slurm.conf
  /usr/sbin/slurmctld -i -f "$d/slurm.conf" || die "slurmctld failed; see $d/log/slurmctld.log"
  /usr/sbin/slurmd -N "$node" -f "$d/slurm.conf" || die "slurmd failed; see $d/log/slurmd.log"
  local i state=""
  for i in $(seq 300); do
    state=$(sinfo -h -n "$node" -o %T 2>/dev/null | head -1 || true)
    [ "$state" = idle ] && break
    sleep 0.2
  done
  if [ "$state" != idle ]; then
    echo "cluster.sh: node $node is '$state', not idle after 60 s" >&2
    tail -n 20 "$d/log/slurmctld.log" "$d/log/slurmd.log" >&2 || true
    cmd_stop "$d"
    exit 1
  fi
  echo "cluster.sh: SLURM cluster up in $d (node $node, slurmctld port $ctl_port); source $d/env"
}

# The multi-node cluster (network namespaces) lives in its own file.
# shellcheck source-path=SCRIPTDIR source=cluster-nodes.sh
. "$(dirname "${BASH_SOURCE[0]}")/cluster-nodes.sh"

usage() { sed -n '2,18p' "$0"; exit 2; }

[ $# -ge 2 ] || usage
cmd=$1 dir=$2
shift 2
case $cmd in
  start)
    nodes="" cpus=""
    while [ $# -gt 0 ]; do
      case $1 in
        --nodes) [ $# -ge 2 ] || die "--nodes needs a number"; nodes=$2; shift 2 ;;
        --nodes=*) nodes=${1#--nodes=}; shift ;;
        *[!0-9]* | "") die "start: unknown argument '$1' (start DIR [CPUS] [--nodes N])" ;;
        *) cpus=$1; shift ;;
      esac
    done
    if [ -n "$nodes" ]; then
      cmd_start_nodes "$dir" "$nodes" "${cpus:-2}"
    else
      cmd_start "$dir" "$cpus"
    fi ;;
  stop) if is_multinode "$dir"; then cmd_stop_nodes "$dir"; else cmd_stop "$dir"; fi ;;
  status) if is_multinode "$dir"; then cmd_status_nodes "$dir"; else cmd_status "$dir"; fi ;;
  kill-node) [ $# -eq 1 ] || usage; cmd_kill_node "$dir" "$1" ;;
  revive-node) [ $# -eq 1 ] || usage; cmd_revive_node "$dir" "$1" ;;
  *) die "unknown command $cmd (start, stop, status, kill-node, revive-node)" ;;
esac
