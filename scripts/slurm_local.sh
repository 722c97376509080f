#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests and trials: munge, slurmctld and slurmd
# (Debian's slurm-wlm), configured in a state folder of their own, nothing system-wide changed
# but the munge daemon's key (created by the package).
#
#   bash scripts/slurm_local.sh start [STATE]   # installs slurmctld, slurmd, slurm-client, munge when missing (apt)
#   source <(bash scripts/slurm_local.sh env [STATE])   # SLURM_CONF for sbatch, squeue, sinfo
#   bash scripts/slurm_local.sh stop [STATE]
#
# STATE defaults to /tmp/textcurate-slurm. The partition is "local", one node with this machine's
# CPUs and memory. Prints the SLURM_CONF line on start. SLURM_LOCAL_PORT (6917) is slurmctld's port,
# slurmd takes the next: two clusters on one machine need two ports.
set -euo pipefail
cmd=${1:-start}
state=${2:-/tmp/textcurate-slurm}
conf=$state/slurm.conf
port=${SLURM_LOCAL_PORT:-6917}  # slurmctld's; slurmd takes the next one

need() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
    && command -v munged >/dev/null && return
  [ "$(id -u)" = 0 ] || { echo "slurm_local: slurm-wlm is not installed and this is not root" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurmctld slurmd slurm-client munge >/dev/null
}

start_munge() {
  if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then return; fi
  [ -f /etc/munge/munge.key ] || { mungekey --create --force 2>/dev/null || \
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key && chmod 400 /etc/munge/munge.key
  mkdir -p /run/munge /var/log/munge /var/lib/munge && chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return; sleep 0.1; done
  echo "slurm_local: munged did not start" >&2; exit 1
}

write_conf() {
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$state/spool" "$state/state" "$state/log"
  cat >"$conf" <<CONF
ClusterName=textcurate
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
ReturnToService=2
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$state/state
SlurmdSpoolDir=$state/spool
SlurmctldPidFile=$state/slurmctld.pid
SlurmdPidFile=$state/slurmd.pid
SlurmctldLogFile=$state/log/slurmctld.log
SlurmdLogFile=$state/log/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
Waittime=0
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=local Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
}

case $cmd in
  start)
    need
    start_munge
    write_conf
    export SLURM_CONF=$conf
    if [ -f "$state/slurmctld.pid" ] && kill -0 "$(cat "$state/slurmctld.pid")" 2>/dev/null; then :; else
      slurmctld -f "$conf" -i
    fi
    if [ -f "$state/slurmd.pid" ] && kill -0 "$(cat "$state/slurmd.pid")" 2>/dev/null; then :; else
      slurmd -f "$conf"
    fi
    for _ in $(seq 100); do
      if sinfo -h -o '%T' 2>/dev/null | grep -Eq '^(idle|mixed|allocated)'; then
        echo "export SLURM_CONF=$conf"
        exit 0
      fi
      sleep 0.3
    done
    echo "slurm_local: the node did not come up; see $state/log/" >&2
    sinfo 2>&1 >&2 || true
    exit 1
    ;;
  env)
    echo "export SLURM_CONF=$conf"
    ;;
  stop)
    for d in slurmd slurmctld; do
      if [ -f "$state/$d.pid" ]; then
        pid=$(cat "$state/$d.pid")
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        rm -f "$state/$d.pid"
      fi
    done
    ;;
  *)
    echo "usage: $0 start|env|stop [STATE]" >&2
    exit 2
    ;;
esac
