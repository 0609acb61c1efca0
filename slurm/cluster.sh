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

cmd_start() {
  local d=$1 cpus=${2:-$(nproc)}
  mkdir -p "$d"
  d=$(cd "$d" && pwd)
  if pid_alive "$d/slurmctld.pid" || pid_alive "$d/slurmd.pid" || pid_alive "$d/munged.pid"; then
    die "a cluster is already running in $d (stop it first)"
  fi
  for b in munged mungekey slurmctld slurmd sinfo; do
    command -v "$b" >/dev/null || [ -x "/usr/sbin/$b" ] || die "$b not found; install slurm-wlm and munge"
  done
  [ "$(id -u)" = 0 ] || die "must run as root (SlurmUser=root)"
  local host node ctl_port d_port user
  host=$(hostname -s)
  node=${CKPT_SLURM_NODE:-ckptnode}
  user=$(id -un)
  ctl_port=$(free_port)
  d_port=$(free_port)
  while [ "$d_port" = "$ctl_port" ]; do d_port=$(free_port); done
  local first_job=$(( (RANDOM % 30000 + 1) * 1000 ))
  mkdir -p "$d/munge" "$d/state" "$d/spool" "$d/log"
  chmod 700 "$d/munge"

  # munge: own key, socket, pid and seed files.
  if [ ! -s "$d/munge/munge.key" ]; then
    /usr/sbin/mungekey -c -k "$d/munge/munge.key" >/dev/null 2>&1 || \
      dd if=/dev/urandom of="$d/munge/munge.key" bs=1024 count=1 2>/dev/null
  fi
  chmod 600 "$d/munge/munge.key"
  /usr/sbin/munged --force --socket="$d/munge/munge.sock" --key-file="$d/munge/munge.key" \
    --pid-file="$d/munged.pid" --seed-file="$d/munge/munge.seed" \
    --log-file="$d/log/munged.log" || die "munged failed to start; see $d/log/munged.log"

  : > "$d/plugstack.conf"
  cat > "$d/cgroup.conf" <<CG
CgroupPlugin=cgroup/v1
CG
  cat > "$d/slurm.conf" <<CONF
# One-machine test cluster written by slurm/cluster.sh
ClusterName=ckpt
# Job ids differ between clusters on one machine: srun --mpi=pmix keys its temp
# directories in /tmp on the job id, so two clusters both running job 1 would collide.
FirstJobId=$first_job
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$d/munge/munge.sock,cred_expire=10
SlurmUser=$user
SlurmdUser=root
StateSaveLocation=$d/state
SlurmdSpoolDir=$d/spool/%n
SlurmctldPidFile=$d/slurmctld.pid
SlurmdPidFile=$d/slurmd.pid
SlurmctldLogFile=$d/log/slurmctld.log
SlurmdLogFile=$d/log/slurmd.log
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
SlurmdTimeout=60
InactiveLimit=0
Waittime=0
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
  cat > "$d/env" <<ENV
# source this file to talk to the ckpt test cluster in $d
export SLURM_CONF=$d/slurm.conf
ENV
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

[ $# -ge 2 ] || { sed -n '2,12p' "$0"; exit 2; }
case $1 in
  start) cmd_start "$2" "${3:-}" ;;
  stop) cmd_stop "$2" ;;
  status) cmd_status "$2" ;;
  *) die "unknown command $1 (start, stop, status)" ;;
esac
