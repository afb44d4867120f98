"""Fluxion resource-query golden cases, run in-process through strato's matcher.

Every ``kind: golden`` case of the corpora's fluxion/cases.json is one
resource-query session: the graph and options from the manifest, the command script
on stdin (``@TEST_SRCDIR@/data/resource/`` replaced by the corpus root), and the
output compared as ``compare_mode`` says. Cases that don't pass yet are listed in
XFAIL (by case name or group) with the reason, and run as non-strict xfails so a
newly passing case shows up as XPASS.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import corpus_path, needs_corpora

from strato.cli.resource_query import Options, SessionError, run_session

CORPUS = corpus_path("fluxion")
pytestmark = needs_corpora
PLACEHOLDER = "@TEST_SRCDIR@/data/resource/"

# group or case name -> reason it does not pass yet
XFAIL: dict[str, str] = {
}


def load_cases() -> list[dict]:
    if not (CORPUS / "cases.json").exists():
        return []
    # golden cases, the two-run update_multi cases whose first run makes the R, and
    # the pruning cases that compare traversal visit counts printed with -e
    return [c for c in json.loads((CORPUS / "cases.json").read_text())
            if c.get("kind") == "golden" or (c.get("setup") and c.get("inline_cmds"))
            or c.get("compare_mode") == "inline_visit_counts"]


def run_setup(case: dict, tmp: str) -> dict:
    """Run a case's setup sessions; returns it with ``<R1>``... replaced by R files."""
    subst: dict[str, str] = {}
    for st in case["setup"]:
        out = io.StringIO()
        run_session(case_options(st), io.StringIO("\n".join(st["inline_cmds"]) + "\n"),
                    out=out, stdout=io.StringIO(), stderr=io.StringIO(), cwd=str(CORPUS))
        docs = [ln for ln in out.getvalue().splitlines() if "INFO" not in ln]
        for doc in docs:
            path = Path(tmp) / f"R{len(subst) + 1}.json"
            path.write_text(doc + "\n")
            subst[f"<R{len(subst) + 1}>"] = str(path)
    cmds = []
    for line in case["inline_cmds"]:
        for k, v in subst.items():
            line = line.replace(k, v)
        cmds.append(line)
    return dict(case, inline_cmds=cmds, setup=None)


def case_options(case: dict) -> Options:
    opts = Options(load_file=str(CORPUS / case["graph"]))
    if case.get("load_format"):
        opts.load_format = case["load_format"]
    if case.get("subsystems"):
        opts.subsystems = case["subsystems"]
    if case.get("policy"):
        opts.policy = case["policy"]
    if case.get("match_format"):
        opts.match_format = case["match_format"]
    if case.get("prune_filters") and case["prune_filters"].strip():
        opts.prune_filters = case["prune_filters"]
    args = list(case.get("extra_args") or [])
    while args:
        a = args.pop(0)
        if a == "-T":
            opts.traverser_policy = args.pop(0)
        elif a == "-W":
            opts.load_allowlist = "cluster," + args.pop(0)
        elif a == "-r":
            opts.reserve_vtx_vec = int(args.pop(0))
        elif a == "-d":
            opts.disable_prompt = True
        elif a == "-e":
            opts.elapse_time = True
    return opts


def run_case(case: dict) -> tuple[str, str, str]:
    """Run one case; returns (-t file text, stdout, stderr)."""
    if case.get("setup"):
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            return run_case(run_setup(case, tmp))
    root = str(CORPUS) + "/"
    if case.get("cmds"):
        script = (CORPUS / case["cmds"]).read_text().replace(PLACEHOLDER, root)
    else:
        script = "\n".join(case["inline_cmds"]) + "\n"
    out, stdout, stderr = io.StringIO(), io.StringIO(), io.StringIO()
    try:
        run_session(case_options(case), io.StringIO(script), out=out, stdout=stdout,
                    stderr=stderr, cwd=str(CORPUS))
    except SessionError as exc:
        stderr.write(f"strato-resource-query: {exc}\n")
    return out.getvalue(), stdout.getvalue(), stderr.getvalue()


def expected_text(rel: str) -> str:
    return (CORPUS / rel).read_text().replace(PLACEHOLDER, str(CORPUS) + "/")


def check(case: dict) -> bool:
    got, stdout, stderr = run_case(case)
    mode = case["compare_mode"]
    if mode == "exact":
        return got == expected_text(case["expected"])
    if mode == "exact_stderr":
        return stderr == expected_text(case["expected"])
    if mode == "exact_out_then_err":
        return got + stderr == expected_text(case["expected"])
    if mode == "exact_out_and_err":
        return (got == expected_text(case["expected"])
                and stderr == expected_text(case["expected_stderr"]))
    if mode == "inline_visit_counts":
        lines = [ln for ln in stdout.splitlines() if "ORDER" in ln]
        return lines == case["expected_inline"]
    if mode == "normalized_json":
        want = [json.loads(x) for x in expected_text(case["expected"]).splitlines()
                if x.strip().startswith("{")]
        have = [json.loads(x) for x in got.splitlines() if x.strip().startswith("{")]
        return want == have
    if mode == "filtered":
        return filtered_output(case, got) == expected_text(case["expected"])
    if mode == "derived":
        return derived_matches(case, got)
    return False


def _json_docs(text: str) -> list:
    """Every JSON document in ``text``, in order (as jq reads a stream)."""
    dec, docs, i = json.JSONDecoder(), [], 0
    while True:
        while i < len(text) and text[i].isspace():
            i += 1
        if i >= len(text):
            return docs
        doc, i = dec.raw_decode(text, i)
        docs.append(doc)


def filtered_output(case: dict, got: str) -> str:
    """The -t output after the filter that ``compare`` describes."""
    how = case["compare"]
    if "uniq_id=D" in how:
        return re.sub(r" \(vtx's uniq_id=\d\)", "", got)
    text = "".join(ln for ln in got.splitlines(keepends=True) if "INFO:" not in ln)
    if "parse the remaining JSON" not in how:
        return text
    out = []
    for doc in _json_docs(text):
        if isinstance(doc, dict) and isinstance(doc.get("execution"), dict):
            doc["execution"].pop("starttime", None)
            doc["execution"].pop("expiration", None)
        out.append(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    pretty = "".join(out)
    if '"rank":' in how:
        pretty = "".join(ln for ln in pretty.splitlines(keepends=True) if '"rank":' not in ln)
    return pretty


def derived_matches(case: dict, got: str) -> bool:
    """The value ``compare`` extracts from the JGF output, against ``expected``."""
    how = case["compare"]
    text = "".join(ln for ln in got.splitlines(keepends=True) if "INFO" not in ln)
    nodes = [n for doc in _json_docs(text) for n in doc["graph"]["nodes"]]
    want = expected_text(case["expected"])
    if "LinuxDeviceID" in how:
        vals = [n["metadata"].get("properties", {}).get("LinuxDeviceID")
                for n in nodes if n["metadata"].get("type") == "storage"]
        return "".join(f"{v}\n" for v in vals if v is not None) == want
    if "ephemeral.label" in how:
        labels = sorted(str((n["metadata"].get("ephemeral") or {}).get("label", "null"))
                        for n in nodes)
        counts: list[list] = []
        for lab in labels:
            if counts and counts[-1][1] == lab:
                counts[-1][0] += 1
            else:
                counts.append([1, lab])
        have = [f"{c} {lab}" for c, lab in counts]
        return ["".join(x.split()) for x in have] == \
            ["".join(x.split()) for x in want.splitlines()]
    return False


def xfail_reason(case: dict) -> str | None:
    return XFAIL.get(case["name"]) or XFAIL.get(case["group"])


CASES = load_cases()


@pytest.mark.skipif(not CASES, reason="Fluxion corpus not found")
@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_fluxion_case(case: dict, request: pytest.FixtureRequest) -> None:
    reason = xfail_reason(case)
    if reason:
        request.applymarker(pytest.mark.xfail(reason=reason, strict=False))
    assert check(case), f"{case['name']} ({case['compare_mode']}) differs from golden output"


def _summary() -> None:  # pragma: no cover - developer aid: python test_fluxion.py [GROUP]
    import collections
    import sys
    import traceback

    counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    pattern = re.compile(sys.argv[1]) if len(sys.argv) > 1 else None
    for c in CASES:
        if pattern and not (pattern.search(c["group"]) or pattern.search(c["name"])):
            continue
        counts[c["group"]][1] += 1
        try:
            ok = check(c)
        except Exception:  # noqa: BLE001
            traceback.print_exc()
            ok = False
        counts[c["group"]][0] += ok
        if not ok and pattern:
            print("FAIL", c["name"])
    for g, (p, t) in sorted(counts.items()):
        print(f"{g}: {p}/{t}")
    print(sum(p for p, _ in counts.values()), "/", sum(t for _, t in counts.values()))


if __name__ == "__main__":
    _summary()
