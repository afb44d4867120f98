"""Bad input to every CLI command: a non-zero exit (2 for a usage error, 1 for a refusal
by the instance) and exactly one line saying why, prefixed with the command's name. One
instance over 4 virtual nodes answers them all; none of them changes it."""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
from conftest import STRATO, Instance

CONFIG = """
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
"""

# (arguments, exit code, the one line on stderr)
CASES = [
    ('alloc -n0 true', 2, 'strato-alloc: Invalid value: task count must be an integer >= 1'),
    ('batch -N1 no-such-script.sh', 2,
     'strato-batch: Invalid value for SCRIPT: cannot read no-such-script.sh: No such '
     'file or directory'),
    ('bulksubmit --cc=x echo ::: 1', 2,
     "strato-bulksubmit: Invalid value for --cc: invalid idset 'x': bad element 'x'"),
    ('bulksubmit echo {} ::::x a', 2,
     "strato-bulksubmit: unknown input separator '::::x' (:::, ::::, :::+)"),
    ('bulksubmit echo {} :::: /no/such', 2,
     'strato-bulksubmit: :::: /no/such: No such file or directory'),
    ('cancel nojob', 2, "strato-cancel: Invalid value for '[JOBIDS]...': invalid job id 'nojob'"),
    ('config check no-such.toml', 1,
     'strato-config: cannot read config no-such.toml: No such file or directory'),
    ('getattr no-such-attr', 1, "strato-getattr: unknown attribute 'no-such-attr'"),
    ('job attach ƒ2Xm', 1, 'strato-job: unknown job id ƒ2Xm'),
    ('job cancel ƒ2Xm', 1, 'strato-job: unknown job id ƒ2Xm'),
    ('job eventlog -p nosuchlog ƒ2Xm', 2, "strato-job: No such option '-p'."),
    ('job id notanid', 1, "strato-job: invalid job id 'notanid'"),
    ('job info ƒ2Xm bogus', 2,
     "strato-job: Invalid value for '{jobspec|R|eventlog}': 'bogus' is not one of "
     "'jobspec', 'R', 'eventlog'."),
    ('job kill -s NOSIG ƒ2Xm', 2, "strato-job: Invalid value for -s: invalid signal 'NOSIG'"),
    ('job raise ƒ2Xm', 1, 'strato-job: unknown job id ƒ2Xm'),
    ('job raise --severity=9 ƒ2Xm', 2,
     "strato-job: Invalid value for '-s' / '--severity': 9 is not in the range 0<=x<=7."),
    ('job status ƒ2Xm', 1, 'strato-job: unknown job id ƒ2Xm'),
    ('job submit no-such.yaml', 1,
     'strato-job: cannot read no-such.yaml: No such file or directory'),
    ('job urgency ƒ2Xm 99', 2,
     "strato-job: Invalid value for 'VALUE': urgency 99 is not in 0-31"),
    ('job validate no-such.yaml', 1, 'no-such.yaml: No such file or directory'),
    ('job wait ƒ2Xm', 1, 'strato-job: unknown job id ƒ2Xm'),
    ('job wait-event ƒ2Xm', 2, "strato-job: Missing argument 'EVENT'."),
    ('jobs -o {nosuchfield}', 2,
     "strato-jobs: Invalid value for --format: unknown field 'nosuchfield'"),
    ('jobs --filter=bogus', 2, "strato-jobs: Invalid value for --filter: invalid filter 'bogus'"),
    ('keygen /no/such/dir/c.cert', 1,
     'strato-keygen: cannot write /no/such/dir/c.cert: No such file or directory'),
    ('kvs dir no.such.dir', 1, 'strato-kvs: no.such.dir: no such key'),
    ('kvs get no.such.key', 1, 'strato-kvs: no.such.key: no such key'),
    ('kvs ls no.such.dir', 1, 'strato-kvs: no.such.dir: no such key'),
    ('kvs put noequals', 2, "strato-kvs: Invalid value: 'noequals' is not KEY=VALUE"),
    ('kvs unlink', 2, "strato-kvs: Missing argument 'KEYS...'."),
    ('lsattr bogus', 2, 'strato-lsattr: Got unexpected extra argument (bogus)'),
    ('module load no-such-sched', 1,
     "strato-module: no such module 'no-such-sched' (modules: sched; schedulers: "
     'sched-graph, sched-simple)'),
    ('module reload nosuch', 1,
     "strato-module: no such module 'nosuch' (modules: sched; schedulers: "
     'sched-graph, sched-simple)'),
    ('overlay status --rank 9', 1, 'strato-overlay: no route to rank 9 (instance size is 1)'),
    ('overlay status --rank -1', 2,
     "strato-overlay: Invalid value for '-r' / '--rank': -1 is not in the range x>=0."),
    ('overlay bogus', 2, "strato-overlay: No such command 'bogus'."),
    ('ping -c 0', 2,
     "strato-ping: Invalid value for '-c' / '--count': 0 is not in the range x>=1."),
    ('plugins bogus', 2, "strato-plugins: No such command 'bogus'."),
    ('proxy ƒ2Xm true', 1, 'strato-proxy: unknown job id ƒ2Xm'),
    ('pstree -L x', 2,
     "strato-pstree: Invalid value for '-L' / '--level': 'x' is not a valid integer range."),
    ('queue disable -q nosuch', 1, "strato-queue: queue 'nosuch' does not exist"),
    ('queue enable nosuchqueue', 2, 'strato-queue: Got unexpected extra argument (nosuchqueue)'),
    ('queue idle -q nosuchqueue', 1, "strato-queue: queue 'nosuchqueue' does not exist"),
    ('queue list -q nosuch', 2, "strato-queue: No such option '-q'."),
    ('queue status -q nosuch', 1, "strato-queue: queue 'nosuch' does not exist"),
    ('queue start -q nosuch', 1, "strato-queue: queue 'nosuch' does not exist"),
    ('queue stop -q nosuch', 1, "strato-queue: queue 'nosuch' does not exist"),
    ('queue drain --timeout=x', 2, "strato-queue: No such option '--timeout'."),
    ('resource drain node99', 1, 'strato-resource: unknown host node99'),
    ('resource undrain node99', 1, 'strato-resource: unknown host node99'),
    ('resource R extra', 2, 'strato-resource: Got unexpected extra argument (extra)'),
    ('resource info extra', 2, 'strato-resource: Got unexpected extra argument (extra)'),
    ('resource list -s bogus', 2, "strato-resource: No such option '-s'."),
    ('resource-query -L no-such.graphml', 1,
     'strato-resource-query: file does not exist for --load-file: no-such.graphml'),
    ('run -n0 true', 2, 'strato-run: Invalid value: task count must be an integer >= 1'),
    ('shutdown ƒ2Xm', 1, 'strato-shutdown: unknown job id ƒ2Xm'),
    ('start --config no-such.toml true', 1,
     'strato-start: cannot read config no-such.toml: No such file or directory'),
    ('start --test-size=0 true', 1, 'strato-start: --test-size must be from 1 to 1024 (got 0)'),
    ('start --test-hosts=n0 true', 2, 'strato-start: --test-hosts needs --test-size'),
    ('submit -n0 true', 2, 'strato-submit: Invalid value: task count must be an integer >= 1'),
    ('submit -t abc true', 2,
     "strato-submit: Invalid value for -t/--time-limit: invalid duration 'abc'"),
    ('submit -t inf true', 2, "strato-submit: Invalid value for -t/--time-limit: invalid time"
     " limit 'inf': must be finite and >= 0 (0 means none)"),
    ('submit --cores=0 true', 2,
     'strato-submit: Invalid value: core count must be an integer >= 1'),
    ('submit --cores=3 -N2 true', 2,
     'strato-submit: Invalid value: core count must be a multiple of the node count'),
    ('submit --cores=4 -n2 true', 2,
     'strato-submit: per-resource options (--cores, --tasks-per-node, --tasks-per-core,'
     ' --gpus-per-node) cannot be used with per-task options (-n, -c, -g)'),
    ('submit -N1 --tasks-per-node=0 true', 2,
     'strato-submit: Invalid value for --tasks-per-node: must be >= 1, not 0'),
    ('submit --tasks-per-core=x true', 2,
     "strato-submit: Invalid value for '--tasks-per-core': 'x' is not a valid integer."),
    ('submit -N1 --tasks-per-node=1 --tasks-per-core=1 true', 2,
     'strato-submit: --tasks-per-node and --tasks-per-core cannot be used together'),
    ('submit --gpus-per-node=1 true', 2, 'strato-submit: --gpus-per-node requires -N/--nodes'),
    ('submit --signal=BOGUS true', 2,
     "strato-submit: Invalid value for --signal: invalid signal 'BOGUS' in 'BOGUS'"),
    ('submit --signal=@xyz true', 2,
     "strato-submit: Invalid value for --signal: invalid duration 'xyz' in '@xyz'"),
    ('submit --taskmap=hostfile:x true', 2, "strato-submit: Invalid value for --taskmap: unknown"
     " taskmap scheme 'hostfile' (have: block, cyclic, manual)"),
    ('submit --taskmap=cyclic:0 true', 2,
     "strato-submit: Invalid value for --taskmap: invalid cyclic stride '0' (an integer >= 1)"),
    ('submit --taskmap=manual:[[0] true', 2,
     "strato-submit: Invalid value for --taskmap: invalid manual taskmap: not JSON: '[[0]'"),
    ('submit --add-file=/no/such/file true', 2,
     'strato-submit: Invalid value for --add-file: /no/such/file: No such file or directory'),
    ('submit -S ^foo=/no/such.json true', 2,
     'strato-submit: Invalid value for -S/--setattr: /no/such.json: No such file or directory'),
    ('submit -S =1 true', 2, "strato-submit: Invalid value for -S/--setattr: invalid key in '=1'"),
    ('submit -o ^x true', 2, "strato-submit: Invalid value for -o/--setopt: '^x': ^x needs =FILE"),
    ('submit --env=X=$NOPE true', 2,
     "strato-submit: Invalid value for --env: variable 'NOPE' not found in 'X=$NOPE'"),
    ('submit --rlimit=nosuch true', 2,
     "strato-submit: Invalid value for --rlimit: no rlimit matches 'nosuch'"),
    ('submit --rlimit=core=abc true', 2,
     'strato-submit: Invalid value for --rlimit: invalid value in core=abc'),
    ('submit --dependency=:x true', 2,
     "strato-submit: Invalid value for --dependency: invalid dependency URI ':x'"),
    ('submit --resources-shape=node=0 true', 2, 'strato-submit: Invalid value for'
     " --resources-shape: expected a count (an integer >= 1 or a range) at position 5 of"
     " 'node=0'"),
    ('submit --resources-shape=foo=2 true', 2, 'strato-submit: Invalid value for'
     ' --resources-shape: these resources are not a version 1 jobspec strato can run:'
     ' resources[0].type: must be node or slot'),
    ('submit --resources-json=/no/such.json true', 2, 'strato-submit: Invalid value for'
     ' --resources-json: /no/such.json: No such file or directory'),
    ('submit --begin-time=3pm true', 2, "strato-submit: Invalid value for --begin-time: invalid"
     " time '3pm' (use +FSD, @EPOCH or an ISO 8601 time)"),
    ('submit --log=/no/such/dir/log true', 2,
     'strato-submit: Invalid value for --log: /no/such/dir/log: No such file or directory'),
    ('batch --nslots=0 --wrap true', 2,
     'strato-batch: Invalid value: task count must be an integer >= 1'),
    ('alloc --cores-per-slot=0 -n1 true', 2,
     'strato-alloc: Invalid value: cores per task must be an integer >= 1'),
    ('run --wait-event=start -t x true', 2,
     "strato-run: Invalid value for -t/--time-limit: invalid duration 'x'"),
    ('jobs notanid', 2, "strato-jobs: Invalid value for JOBID: invalid job id 'notanid'"),
    ('jobs ƒ2Xm', 1, 'strato-jobs: job ƒ2Xm unknown'),
    ('start --no-program true', 2, 'strato-start: --no-program runs no command and waits for '
     'no process; give one or the other'),
    ('top --color=sometimes', 2, "strato-top: Invalid value for '--color': 'sometimes' is "
     "not one of 'auto', 'never', 'always'."),
    ('top -q nosuch', 1, "strato-top: queue 'nosuch' does not exist"),
    ('uptime extra', 2, 'strato-uptime: Got unexpected extra argument (extra)'),
    ('uri ƒ2Xm', 1, 'strato-uri: unknown job id ƒ2Xm'),
]


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    i = Instance(tmp_path_factory.mktemp("bad-input"), CONFIG)
    yield i
    i.stop()


@pytest.mark.parametrize("args,code,line", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line(inst, args, code, line):
    res = inst.strato(*shlex.split(args), input="")
    err = res.stderr.splitlines()
    if args.startswith("job validate"):  # validate reports each file on stdout
        assert (res.returncode, res.stdout.splitlines(), err) == (code, [line], [])
    else:
        assert (res.returncode, err, res.stdout) == (code, [line], "")


def test_bad_input_changed_nothing(inst):
    """Every command above was refused: no job, queue and resources as they were."""
    assert json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"] == []
    status = inst.strato("queue", "status", check=True).stdout
    assert "disabled" not in status and "stopped" not in status
    assert inst.strato("resource", "info", check=True).stdout.strip().startswith("4 Nodes")
    res = subprocess.run([*STRATO, "resource", "list", "-n"], env=inst.env, capture_output=True,
                         text=True, timeout=60)
    assert "drained" not in res.stdout
