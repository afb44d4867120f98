"""Issue 4's submission interface end to end: options, dependencies, queues,
ingest plugins, batch scripts and bulksubmit."""

from __future__ import annotations

import json
import os
import time

import pytest

import strato
from strato import job

SIM_NODES = """
[[resource.config]]
hosts = "node[0-3]"
cores = "0-3"
properties = ["amd64"]
[[resource.config]]
hosts = "gpu[0-1]"
cores = "0-3"
gpus = "0-1"
properties = ["arm", "gpu"]
"""


def records(inst) -> dict:
    out = json.loads(inst.strato("jobs", "-a", "--json", check=True).stdout)["jobs"]
    return {r["id"]: r for r in out}


def jid(text: str) -> int:
    return job.id_parse(text.strip())


def test_requires_constraint_picks_matching_nodes(make_instance):
    inst = make_instance(config=SIM_NODES + '[exec]\nbackend = "sim"\nsim-duration = 100\n')
    a = inst.strato("submit", "--requires=gpu", "-g1", "true", check=True).stdout
    b = inst.strato("submit", "--requires=amd64 and not host:node[0-2]", "true",
                    check=True).stdout
    c = inst.strato("submit", "--requires=-amd64 & arm", "-N1", "true", check=True).stdout
    recs = records(inst)
    assert recs[jid(a)]["nodelist"] == "gpu0"
    assert recs[jid(b)]["nodelist"] == "node3"
    assert recs[jid(c)]["nodelist"] == "gpu1"  # exclusive: gpu0 is partly in use
    res = inst.strato("submit", "--requires=host:node[1-", "true")
    assert res.returncode == 2 and "--requires" in res.stderr
    res = inst.strato("run", "--requires=nosuchprop", "true")
    assert res.returncode == 1 and "unsatisfiable" in res.stderr


def test_dependencies(sim_instance):
    inst = sim_instance
    first = inst.strato("submit", "-S", "exec.test.run_duration=0.3", "true",
                        check=True).stdout.strip()
    ok = inst.strato("submit", f"--dependency=afterok:{first}", "true", check=True).stdout
    notok = inst.strato("submit", f"--dependency=afternotok:{first}", "true",
                        check=True).stdout
    after = inst.strato("submit", f"--dependency=after:{first}", "true", check=True).stdout
    res = inst.strato("job", "wait-event", "-t", "20", ok.strip(), "clean", check=True)
    assert res.returncode == 0
    inst.strato("job", "wait-event", "-t", "20", notok.strip(), "clean", check=True)
    inst.strato("job", "wait", after.strip(), check=True)
    recs = records(inst)
    assert recs[jid(ok)]["result"] == "COMPLETED"
    assert recs[jid(ok)]["t_run"] >= recs[jid(first)]["t_inactive"]
    assert recs[jid(notok)]["result"] == "FAILED"
    assert recs[jid(notok)]["exception"]["type"] == "dependency"
    assert "succeeded" in recs[jid(notok)]["exception"]["note"]
    ev = inst.strato("job", "eventlog", ok.strip(), check=True).stdout
    assert "dependency-add" in ev and "dependency-remove" in ev


def test_afterexcept_and_afterany_after_a_cancel(sim_instance):
    inst = sim_instance
    held = inst.strato("submit", "--urgency=hold", "true", check=True).stdout.strip()
    exc = inst.strato("submit", f"--dependency=afterexcept:{held}", "true",
                      check=True).stdout.strip()
    anyj = inst.strato("submit", f"--dependency=afterany:{held}", "true",
                       check=True).stdout.strip()
    out = inst.strato("jobs", "-n", "-o", "{id.f58} {state}", check=True).stdout
    assert f"{exc} DEPEND" in out and f"{anyj} DEPEND" in out
    inst.strato("cancel", held, check=True)
    inst.strato("job", "wait", exc, check=True)
    inst.strato("job", "wait", anyj, check=True)


def test_singleton(make_instance):
    inst = make_instance(config='[exec]\nbackend = "sim"\n[[resource.config]]\n'
                                'hosts = "n[0-3]"\ncores = "0-3"\n')
    ids = [inst.strato("submit", "--job-name=solo", "--dependency=singleton",
                       "-S", "exec.test.run_duration=0.2", "true", check=True).stdout.strip()
           for _ in range(3)]
    inst.strato("queue", "drain", check=True)
    recs = records(inst)
    spans = sorted((recs[jid(i)]["t_run"], recs[jid(i)]["t_inactive"]) for i in ids)
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end  # never two at once


def test_begin_time(sim_instance):
    inst = sim_instance
    # An hour away: DEPEND whenever another process looks (+0.5s could have passed
    # by the time a second CLI process starts on a loaded machine).
    later = inst.strato("submit", "--begin-time=+1h", "true", check=True).stdout.strip()
    assert inst.strato("jobs", "-n", "-o", "{id} {state}", check=True).stdout.split() \
        == [later, "DEPEND"]
    assert inst.strato("jobs", "-n", "-o", "{dependencies}",
                       check=True).stdout.startswith("begin@")
    # A short one runs, and not before its time (t0 precedes the CLI's clock reading).
    t0 = time.time()
    jobid = inst.strato("submit", "--begin-time=+0.5s", "true", check=True).stdout.strip()
    inst.strato("job", "wait", jobid, check=True)
    assert records(inst)[jid(jobid)]["t_run"] >= t0 + 0.5
    assert records(inst)[jid(later)]["state"] == "DEPEND"


@pytest.mark.parametrize("args,message", [
    (["--dependency=afterok:ƒ2Xm9", "true"], "unknown job id"),
    (["--dependency=afterok:notanid", "true"], "invalid job id"),
    (["--dependency=whenever:1", "true"], "dependency scheme 'whenever' is not supported"),
    (["--dependency=afterok", "true"], "invalid dependency"),
    (["--begin-time=tomorrowish", "true"], "invalid time"),
    (["-q", "batch", "true"], "queue 'batch' does not exist"),
    (["--rlimit=bogus=1", "true"], "invalid rlimit"),
    (["--flags=fast", "true"], "unknown flag 'fast'"),
    (["--env-file=/no/such/file", "true"], "cannot read"),
    (["--cc=1-3", "--bcc=1-3", "true"], "cannot be used together"),
])
def test_bad_submissions_submit_nothing(instance, args, message):
    res = instance.strato("submit", *args)
    assert res.returncode != 0
    assert message in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert records(instance) == {}


QUEUES = """
[exec]
backend = "sim"
sim-duration = 0.05
[[resource.config]]
hosts = "b[0-3]"
cores = "0-1"
properties = ["batch"]
[[resource.config]]
hosts = "d0"
cores = "0-1"
properties = ["debug"]
[policy.jobspec.defaults.system]
queue = "batch"
duration = "1h"
[policy.limits]
duration = "2h"
[queues.batch]
requires = ["batch"]
[queues.debug]
requires = ["debug"]
policy.limits.duration = "30m"
policy.limits.job-size.max.nnodes = 1
policy.jobspec.defaults.system.duration = "5m"
"""


def test_queues_defaults_limits_and_placement(make_instance):
    inst = make_instance(config=QUEUES)
    b = inst.strato("submit", "true", check=True).stdout
    d = inst.strato("submit", "-q", "debug", "true", check=True).stdout
    inst.strato("queue", "drain", check=True)
    recs = records(inst)
    assert recs[jid(b)]["queue"] == "batch" and recs[jid(b)]["nodelist"].startswith("b")
    assert recs[jid(b)]["duration"] == 3600
    assert recs[jid(d)]["queue"] == "debug" and recs[jid(d)]["nodelist"] == "d0"
    assert recs[jid(d)]["duration"] == 300
    res = inst.strato("submit", "-q", "debug", "-t", "1h", "true")
    assert res.returncode == 1
    assert "duration 1h exceeds the limit of queue debug of 30m" in res.stderr
    res = inst.strato("submit", "-q", "debug", "-N2", "true")
    assert res.returncode == 1 and "nnodes 2 exceeds the limit of queue debug of 1" in res.stderr
    res = inst.strato("submit", "-q", "nope", "true")
    assert res.returncode == 1 and "queue 'nope' does not exist" in res.stderr
    listing = inst.strato("queue", "list", check=True).stdout.splitlines()
    assert listing[0].split()[:3] == ["QUEUE", "EN", "ST"]
    assert listing[1].split()[0] == "batch*" and listing[2].split()[3:5] == ["5m", "30m"]


def test_queue_stop_and_disable_per_queue(make_instance):
    inst = make_instance(config=QUEUES)
    inst.strato("queue", "stop", "-q", "debug", "fixing", check=True)
    d = inst.strato("submit", "-q", "debug", "true", check=True).stdout.strip()
    b = inst.strato("submit", "true", check=True).stdout.strip()
    inst.strato("job", "wait", b, check=True)  # batch schedules while debug is stopped
    status = inst.strato("queue", "status", check=True).stdout
    assert "debug: Scheduling is stopped: fixing" in status
    assert "SCHED" in inst.strato("jobs", "-n", "-o", "{state}", check=True).stdout
    inst.strato("queue", "disable", "-q", "batch", "closed", check=True)
    res = inst.strato("submit", "true")
    assert res.returncode == 1 and "queue batch is disabled: closed" in res.stderr
    inst.strato("queue", "start", "-q", "debug", check=True)
    inst.strato("job", "wait", d, check=True)
    res = inst.strato("queue", "stop", "-q", "nosuch")
    assert res.returncode == 1 and "does not exist" in res.stderr


def test_required_attributes_plugin(make_instance):
    inst = make_instance(config='[plugins]\nload = ["ingest-require"]\n'
                                '[ingest-require]\nattributes = ["system.project"]\n')
    res = inst.strato("submit", "true")
    assert res.returncode == 1
    assert "attribute system.project is required" in res.stderr
    inst.strato("submit", "--setattr=project=climate", "true", check=True)


def test_cc_and_output_templates(instance, tmp_path):
    res = instance.strato("submit", "--cc=1-3", "--wait", "--quiet",
                          "--output=out-{{cc}}.txt", "sh", "-c", "echo $STRATO_JOB_CC",
                          cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    for i in (1, 2, 3):
        assert (tmp_path / f"out-{i}.txt").read_text() == f"{i}\n"
    res = instance.strato("submit", "--bcc=1-2", "--wait", "--quiet", "sh", "-c",
                          'test -z "$STRATO_JOB_CC"')
    assert res.returncode == 0


def test_env_rules_input_rlimit_label(instance, tmp_path):
    envfile = tmp_path / "env"
    envfile.write_text("# comment\nFROM_FILE=yes\n")
    (tmp_path / "in.txt").write_text("hello from stdin\n")
    res = instance.strato("run", "--env=-HOME", f"--env-file={envfile}", "--env=A=1",
                          "--input=in.txt", "--cwd", str(tmp_path), "--rlimit=nofile=64",
                          "sh", "-c", 'echo "${HOME:-nohome} $FROM_FILE $A"; cat; ulimit -n',
                          check=True)
    assert res.stdout.splitlines() == ["nohome yes 1", "hello from stdin", "64"]
    res = instance.strato("run", "-n2", "--label-io", "sh", "-c", "echo hi", check=True)
    assert sorted(res.stdout.splitlines()) == ["0: hi", "1: hi"]


def test_watch_and_progress(instance):
    res = instance.strato("submit", "--cc=1-2", "--watch", "--quiet", "sh", "-c",
                          "echo watched $STRATO_JOB_CC")
    assert res.returncode == 0
    assert res.stdout.splitlines() == ["watched 1", "watched 2"]
    res = instance.strato("submit", "--cc=1-3", "--progress", "--jps", "--quiet", "false")
    assert res.returncode == 1  # not a terminal: no bar, but it waited for the failures
    assert "PD:" not in res.stdout


def test_progress_bar_rendering():
    from strato.cli.progress import render

    assert render(10, 3, 2, 4, 1, width=10) == "PD:3 R:2 CD:4 F:1 [#####.....]  50.0%"
    assert render(4, 0, 0, 4, 0, width=4, jps=12.34).endswith("100.0% 12.3 job/s")


def test_batch_script_with_directives(instance, tmp_path):
    script = tmp_path / "job.sh"
    script.write_text("#!/bin/sh\n#STRATO: --job-name=from-directive\n#STRATO: -t 10m\n"
                      'echo "batch $1 $STRATO_JOB_SIZE"\n')
    res = instance.strato("batch", "--output=b.out", str(script), "arg1", cwd=tmp_path,
                          check=True)
    jobid = res.stdout.strip()
    instance.strato("job", "wait", jobid, check=True)
    assert (tmp_path / "b.out").read_text() == "batch arg1 1\n"
    rec = records(instance)[jid(jobid)]
    assert rec["name"] == "from-directive" and rec["duration"] == 600
    # the command line overrides a directive
    res = instance.strato("batch", "--dry-run", "--job-name=cli", str(script), check=True)
    js = json.loads(res.stdout)
    assert js["attributes"]["system"]["job"]["name"] == "cli"
    assert js["attributes"]["system"]["files"]["script"]["data"] == script.read_text()


def test_batch_dry_run_needs_no_instance_and_rejects_bad_directives(tmp_path):
    import subprocess
    import sys

    from conftest import STRATO

    env = dict(os.environ)
    env.pop("STRATO_URI", None)
    good = tmp_path / "g.sh"
    good.write_text("#!/bin/sh\n# FLUX: -N2\n# FLUX: --queue=debug\nhostname\n")
    res = subprocess.run([*STRATO, "batch", "--dry-run", str(good)], env=env,
                         capture_output=True, text=True)
    js = json.loads(res.stdout)
    assert js["resources"][0]["type"] == "node" and js["resources"][0]["count"] == 2
    assert js["attributes"]["system"]["queue"] == "debug"
    bad = tmp_path / "b.sh"
    bad.write_text("#!/bin/sh\n#FLUX: -n1\n#flux: -n2\n")
    res = subprocess.run([*STRATO, "batch", "--dry-run", str(bad)], env=env,
                         capture_output=True, text=True)
    assert res.returncode == 2
    assert "sentinel changed from '#FLUX:' to '#flux:'" in res.stderr
    del sys


def test_bulksubmit(instance, tmp_path):
    res = instance.strato("bulksubmit", "--wait", "--quiet", "--job-name=j{}",
                          "--define=sq=int(x)**2", "--output=o{}.txt", "sh", "-c",
                          "echo {} {.sq} {seq}", ":::", "2", "3", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "o2.txt").read_text() == "2 4 0\n"
    assert (tmp_path / "o3.txt").read_text() == "3 9 1\n"
    res = instance.strato("bulksubmit", "--dry-run", "echo", "{0}{1}", ":::", "a", "b",
                          ":::", "x", check=True)
    assert res.stdout.splitlines() == ["bulksubmit: submit echo ax",
                                       "bulksubmit: submit echo bx"]
    res = instance.strato("bulksubmit", "--quiet", "--wait", "echo", "{}", input="l1\nl2\n")
    assert res.returncode == 0
    assert {r["name"] for r in records(instance).values()} >= {"echo"}
    res = instance.strato("bulksubmit", "-n", "{}", "true", ":::", "1", "0")
    assert res.returncode != 0  # -n 0 for the second input: nothing is submitted
    res = instance.strato("bulksubmit", "echo", "{3}", ":::", "a")
    assert res.returncode == 2 and "cannot substitute" in res.stderr


def test_job_submit_file(instance, tmp_path):
    js = strato.JobspecV1.from_command(["echo", "from-file"]).jobspec
    path = tmp_path / "js.json"
    path.write_text(json.dumps(js))
    jobid = instance.strato("job", "submit", str(path), check=True).stdout.strip()
    assert instance.strato("job", "attach", jobid, check=True).stdout == "from-file\n"
    res = instance.strato("job", "submit", "-", input="version: 1\n")
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1


def test_jobs_filters_user_queue_since(make_instance):
    inst = make_instance(config=QUEUES)
    inst.strato("submit", "--wait", "--job-name=old", "true", check=True)
    mark = time.time()
    inst.strato("submit", "--wait", "-q", "debug", "--job-name=new", "true", check=True)
    names = inst.strato("jobs", "-a", "-n", "-o", "{name}", f"--since=@{mark}", check=True)
    assert names.stdout.split() == ["new"]
    assert inst.strato("jobs", "-n", "-o", "{name}", "--since=-1h",
                       check=True).stdout.split() == ["new", "old"]
    q = inst.strato("jobs", "-a", "-n", "-q", "batch", "-o", "{name}", check=True)
    assert q.stdout.split() == ["old"]
    assert inst.strato("jobs", "-a", "-n", "-u", "4242", check=True).stdout == ""
    assert len(inst.strato("jobs", "-a", "-n", "-A", check=True).stdout.split("\n")) == 3
    res = inst.strato("jobs", "--since=sometime")
    assert res.returncode == 2 and "invalid time" in res.stderr
    res = inst.strato("jobs", "-u", "no-such-user-xyz")
    assert res.returncode == 2 and "unknown user" in res.stderr
    res = inst.strato("jobs", "--filter=sideways")
    assert res.returncode == 2 and "sideways" in res.stderr
