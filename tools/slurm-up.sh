#!/bin/sh
# A one-host Slurm cluster for strato's tests: slurmctld and one slurmd on this machine,
# authenticated by munge, so that `srun -n4 --mpi=pmi2 strato start ...` can be tested.
#
#   tools/slurm-up.sh          install Debian's slurm-wlm and munge if missing (apt, as
#                              root), write /etc/slurm/slurm.conf, start munged, slurmctld
#                              and slurmd, and wait until sinfo shows this node idle
#   tools/slurm-up.sh --stop   stop the daemons this script started
#   tools/slurm-up.sh --print-config --dir DIR [--name CLUSTER] NODE=ADDR...
#                              print the slurm.conf of a test cluster of these nodes
#                              (slurmctld on the first; every file under DIR, each
#                              slurmd's its own) and do nothing else: for tests that run
#                              their own slurmds, e.g. in network namespaces
#
# Idempotent: what is installed is not installed again, what runs is not started again,
# and an up cluster is found in well under a second. The last line printed says what
# was done ("slurm: up, started: munged slurmctld slurmd" or "slurm: up, started:");
# on failure the last line of standard error says why, and the exit status is 1.
#
# The cluster is for tests only: SlurmUser root, no accounting, no cgroups
# (proctrack/linuxproc, task/none), MpiDefault none (srun --mpi=pmi2 asks for PMI-2).
# It refuses to overwrite a slurm.conf it did not write. SLURM_CONF names another
# config file; STRATO_SLURM_TIMEOUT, the seconds to wait for the node (default 120).
set -u

CONF=${SLURM_CONF:-/etc/slurm/slurm.conf}
MARK="# written by strato tools/slurm-up.sh"
STATE=/run/strato-slurm          # pid files, and the list of daemons this script started
SPOOL=/var/spool/strato-slurm
LOGS=/var/log/strato-slurm
TIMEOUT=${STRATO_SLURM_TIMEOUT:-120}
NODE=$(hostname -s)
USAGE="usage: tools/slurm-up.sh [--stop | --print-config --dir DIR [--name CLUSTER] NODE=ADDR...]"

die() { echo "slurm-up: $*" >&2; exit 1; }

alive() {  # alive PIDFILE NAME: the process of PIDFILE runs (not a zombie) and is NAME
    [ -r "$1" ] || return 1
    pid=$(cat "$1" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ] \
        && [ "$(cut -d ' ' -f 3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

stop() {
    [ -r "$STATE/started" ] || { echo "slurm: nothing started by slurm-up to stop"; return 0; }
    for name in $(cat "$STATE/started"); do
        case $name in
            munged) pidfile=/run/munge/munged.pid ;;
            *) pidfile=$STATE/$name.pid ;;
        esac
        if alive "$pidfile" "$name"; then
            kill "$(cat "$pidfile")"
        fi
    done
    rm -f "$STATE/started"
    echo "slurm: stopped"
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n 1; }

install_packages() {
    missing=""
    for cmd in slurmctld slurmd srun sinfo munged; do
        command -v "$cmd" >/dev/null 2>&1 || missing="$missing $cmd"
    done
    [ -z "$missing" ] && return 0
    [ "$(id -u)" = 0 ] || die "slurm is not installed (no$missing) and installing it needs root"
    command -v apt-get >/dev/null 2>&1 || die "slurm is not installed (no$missing) and there is no apt-get"
    echo "slurm-up: installing slurm-wlm and munge with apt"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends slurm-wlm munge; } >"${TMPDIR:-/tmp}/slurm-up-apt.log" 2>&1 \
        || die "apt-get install slurm-wlm munge failed (see ${TMPDIR:-/tmp}/slurm-up-apt.log)"
}

# config CLUSTER SPOOL RUN LOGS NODE=ADDR...: the slurm.conf of a test cluster of these
# nodes, each with this machine's CPUs, slurmctld on the first. With more than one node
# (all on this machine, in network namespaces) each slurmd's files are its own (%n).
config() {
    hw=$(slurmd -C 2>/dev/null | head -n 1 | tr ' ' '\n' \
         | grep -E '^(CPUs|Boards|SocketsPerBoard|CoresPerSocket|ThreadsPerCore)=' | tr '\n' ' ')
    [ -n "$hw" ] || die "slurmd -C did not describe this machine's CPUs"
    cluster=$1 spool=$2 run=$3 logs=$4
    shift 4
    if [ $# = 1 ]; then what="a one-host cluster" own=""; else what="a cluster of $# hosts" own=".%n"; fi
    nodes=""
    for node in "$@"; do
        nodes="$nodes${nodes:+
}NodeName=${node%%=*} NodeAddr=${node#*=} ${hw}State=UNKNOWN"
    done
    cat <<EOF
$MARK: $what for tests
ClusterName=$cluster
SlurmctldHost=${1%%=*}(${1#*=})
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
ReturnToService=2
StateSaveLocation=$spool/ctld
SlurmdSpoolDir=$spool/d$own
SlurmctldPidFile=$run/slurmctld.pid
SlurmdPidFile=$run/slurmd$own.pid
SlurmctldLogFile=$logs/slurmctld.log
SlurmdLogFile=$logs/slurmd$own.log
$nodes
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
}

print_config() {  # --print-config's arguments: check them, then print the config
    dir="" cluster=strato-test
    while [ $# -gt 0 ]; do
        case $1 in
            --dir|--name)
                [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value ($USAGE)"
                if [ "$1" = --dir ]; then dir=$2; else cluster=$2; fi
                shift 2 ;;
            -*) die "unknown argument '$1' ($USAGE)" ;;
            *) break ;;
        esac
    done
    [ -n "$dir" ] || die "--print-config needs --dir DIR ($USAGE)"
    [ $# -gt 0 ] || die "--print-config needs at least one NODE=ADDR ($USAGE)"
    for node in "$@"; do
        case $node in
            =*|*=|*=*=*|*[!A-Za-z0-9._:=-]*) die "'$node' is not NODE=ADDR ($USAGE)" ;;
            *=*) ;;
            *) die "'$node' is not NODE=ADDR ($USAGE)" ;;
        esac
    done
    config "$cluster" "$dir" "$dir" "$dir" "$@"
}

write_config() {  # the config for this host; restarts our daemons when it changed
    new=$(config strato-test "$SPOOL" "$STATE" "$LOGS" "$NODE=127.0.0.1") || exit 1
    if [ -e "$CONF" ]; then
        head -n 1 "$CONF" | grep -qF "$MARK" \
            || die "$CONF exists and was not written by tools/slurm-up.sh: not touching it"
        [ "$(cat "$CONF")" = "$new" ] && return 0
        echo "slurm-up: $CONF changed: restarting the daemons"
        for name in slurmd slurmctld; do
            alive "$STATE/$name.pid" "$name" && kill "$(cat "$STATE/$name.pid")"
        done
        for _ in $(seq 50); do
            alive "$STATE/slurmctld.pid" slurmctld || alive "$STATE/slurmd.pid" slurmd || break
            sleep 0.1
        done
    fi
    mkdir -p "$(dirname "$CONF")"
    printf '%s\n' "$new" >"$CONF"
}

started=""
start() {  # start NAME CMD...: run a daemon (each forks into the background itself)
    name=$1
    shift
    # no lock (fd 9) and no caller's pipe is handed down to the daemon
    "$@" </dev/null >"$LOGS/$name.start.log" 2>&1 9>&- \
        || die "$name did not start: $(tail -n 1 "$LOGS/$name.start.log")"
    started="$started $name"
    echo "$name" >>"$STATE/started"
}

up() {
    if [ "$(id -u)" != 0 ]; then  # a user can use a cluster root has set up
        case $(node_state) in
            idle|mixed|allocated) echo "slurm: up, started:"; return 0 ;;
        esac
        die "Slurm is not up on $NODE and starting munged, slurmctld and slurmd needs root"
    fi
    mkdir -p "$STATE"
    exec 9>"$STATE/lock"  # two test runs at once: the second waits, then finds it up
    flock 9
    install_packages
    mkdir -p "$SPOOL/ctld" "$SPOOL/d" "$LOGS"
    write_config
    if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
        mkdir -p /run/munge /var/log/munge /var/lib/munge
        chown munge:munge /run/munge /var/log/munge /var/lib/munge
        [ -s /etc/munge/munge.key ] || { mungekey --create >/dev/null 2>&1 \
            && chown munge:munge /etc/munge/munge.key; } || die "cannot create /etc/munge/munge.key"
        start munged runuser -u munge -- munged
        munge -n | unmunge >/dev/null 2>&1 || die "munged runs but munge credentials do not decode"
    fi
    alive "$STATE/slurmctld.pid" slurmctld || start slurmctld slurmctld
    alive "$STATE/slurmd.pid" slurmd || start slurmd slurmd
    waited=0
    while :; do
        state=$(node_state)
        case $state in
            idle|mixed|allocated) break ;;
            *drain*|down*) scontrol update nodename="$NODE" state=resume >/dev/null 2>&1 ;;
        esac
        alive "$STATE/slurmd.pid" slurmd \
            || die "slurmd exited (see $LOGS/slurmd.log): $(tail -n 1 "$LOGS/slurmd.log" 2>/dev/null)"
        alive "$STATE/slurmctld.pid" slurmctld \
            || die "slurmctld exited (see $LOGS/slurmctld.log): $(tail -n 1 "$LOGS/slurmctld.log" 2>/dev/null)"
        [ "$waited" -ge $((TIMEOUT * 10)) ] \
            && die "node $NODE is not idle after ${TIMEOUT}s (sinfo says '${state:-nothing}'; see $LOGS)"
        sleep 0.1
        waited=$((waited + 1))
    done
    echo "slurm: up, started:$started"
}

case ${1:-} in
    "") up ;;
    --stop) stop ;;
    --print-config) shift; print_config "$@" ;;
    *) die "unknown argument '$1' ($USAGE)" ;;
esac
