"""Plugins: a third-party plugin from its own directory changes behaviour."""

from __future__ import annotations

import textwrap

PLUGIN = textwrap.dedent('''
    """A site policy: refuse jobs whose name starts with 'bad'."""
    from strato.core.hookspecs import hookimpl

    ENDED = []

    @hookimpl
    def ingest_validate(jobspec, user):
        name = jobspec["attributes"]["system"].get("job", {}).get("name", "")
        if name.startswith("bad"):
            raise ValueError(f"site policy: job name '{name}' is not allowed")

    @hookimpl
    def acct_job_end(job, usage):
        ENDED.append(job.id)

    @hookimpl
    def core_register_services(register):
        register("site.ended", lambda req: req.respond({"count": len(ENDED)}))
''')


def test_third_party_plugin_rejects_jobs_at_ingest(make_instance, tmp_path):
    plugdir = tmp_path / "site-plugins"
    plugdir.mkdir()
    (plugdir / "site_policy.py").write_text(PLUGIN)
    inst = make_instance(config=f"""
[plugins]
searchpath = ["{plugdir}"]
load = ["site_policy"]
""")
    res = inst.strato("submit", "--job-name=bad-job", "true")
    assert res.returncode == 1
    assert res.stderr.strip() == "strato-submit: site policy: job name 'bad-job' is not allowed"
    inst.strato("submit", "--wait", "--job-name=good", "true", check=True)
    assert inst.handle().rpc("site.ended")["count"] == 1
    listed = inst.strato("plugins", "list", check=True).stdout
    assert "site_policy: acct_job_end, core_register_services, ingest_validate" in listed


def test_plugin_with_misspelled_hook_stops_startup(make_instance, tmp_path):
    bad = tmp_path / "typo.py"
    bad.write_text("from strato.core.hookspecs import hookimpl\n"
                   "@hookimpl\ndef ingest_validat(jobspec, user):\n    pass\n")
    import pytest

    with pytest.raises(RuntimeError, match="plugin 'typo'"):
        make_instance(config=f'[plugins]\nsearchpath = ["{tmp_path}"]\nload = ["typo"]\n')


def test_block_a_default_plugin(make_instance):
    inst = make_instance(config='[plugins]\nblock = ["ingest-basic"]\n')
    listed = inst.strato("plugins", "list", check=True).stdout
    assert "ingest-basic" not in listed


def test_a_backend_that_fails_to_start_does_not_wedge_the_queue(make_instance, tmp_path):
    (tmp_path / "flaky_exec.py").write_text(textwrap.dedent('''
        from strato.core.hookspecs import hookimpl

        class Flaky:
            def __init__(self, service, config):
                self.service = service
            def start(self, job):
                if job.name == "boom":
                    raise RuntimeError("no such cluster")
                self.service.event(job.id, "start")
                self.service.event(job.id, "finish", {"status": 0})
            def kill(self, jobid, signum):
                pass
            def shutdown(self):
                pass

        @hookimpl
        def exec_register_backends(register):
            register("flaky", Flaky)
    '''))
    inst = make_instance(config=f'[plugins]\nsearchpath = ["{tmp_path}"]\n'
                                'load = ["flaky_exec"]\n[exec]\nbackend = "flaky"\n')
    res = inst.strato("run", "--job-name=boom", "true")
    assert res.returncode == 1 and "exec failed to start: no such cluster" in res.stderr
    inst.strato("run", "true", check=True)  # the next job runs
    assert "free" in inst.strato("resource", "list", check=True).stdout


CONFIGURED = textwrap.dedent('''
    from strato.core.config import integer
    from strato.core.hookspecs import hookimpl


    class Plugin:
        def __init__(self):
            self.limit = None

        @hookimpl
        def core_declare_config(self, declare):
            declare("site_limits", "max-tasks", default=1024, check=integer(1), help="most")

        @hookimpl
        def core_configure(self, instance, config):
            self.limit = config.get("max-tasks")

        @hookimpl
        def core_register_services(self, register):
            register("site.limit", lambda req: req.respond({"limit": self.limit}))
''')


def test_plugin_loaded_by_path_gets_the_table_of_its_file_stem(make_instance, tmp_path):
    """load = ["/x/site_limits.py"] configures the plugin with [site_limits], as loading
    it by module name does (it used to get the table named by its whole path: none)."""
    path = tmp_path / "site_limits.py"
    path.write_text(CONFIGURED)
    inst = make_instance(config=f"""
[plugins]
load = ["{path}"]
[site_limits]
max-tasks = 7
""")
    assert inst.handle().rpc("site.limit") == {"limit": 7}
