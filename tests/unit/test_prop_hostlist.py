"""Property tests of RFC 29 hostlists: any text expands to a list of host names or
fails with a one-line ValueError, and compressing a list of names round-trips.

Why: hostlists come from configs, constraints and drain targets; a bad one must be
refused with a clear message, never crash or hang the reader.
"""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st
from prop_checks import parse_or_error

from strato.jobspec.hostlist import MAX_HOSTS, compress_hostlist, expand_hostlist

hostlist_text = st.text(alphabet="n0123456789,-[]x ", max_size=30) | st.text(max_size=30)
# host names a hostlist can carry: printable ASCII without brackets, commas or spaces
host_names = st.text(alphabet=st.sampled_from(
    [c for c in map(chr, range(33, 127)) if c not in "[],"]), min_size=1, max_size=8)
numbered = st.builds(lambda p, n, w: p + str(n).zfill(w), st.sampled_from(["n", "node", "", "a-"]),
                     st.integers(0, 300), st.integers(0, 4))


@given(hostlist_text)
@example("n[0-" + "9" * 12 + "]")  # 10**12 names: refused, not allocated
@example("n[" + "1" * 5000 + "]")  # over int()'s 4300-digit limit
@example("n[1-3]x[4]")
def test_expand_any_text(text: str) -> None:
    ok, hosts = parse_or_error(expand_hostlist, text)
    if ok:
        assert all(isinstance(h, str) and h for h in hosts)
        assert len(hosts) <= MAX_HOSTS
    else:
        assert str(hosts).startswith("invalid hostlist ")


@given(st.lists(numbered | host_names, max_size=30))
@example(["n" + "1" * 5000])  # a name with a long run of digits is kept as it is
def test_compress_expand_round_trip(hosts: list[str]) -> None:
    assert expand_hostlist(compress_hostlist(hosts)) == hosts


@given(st.lists(st.text(max_size=6) | st.integers(), max_size=6))
def test_compress_any_names(hosts: list) -> None:
    ok, text = parse_or_error(compress_hostlist, hosts)
    if ok:
        assert expand_hostlist(text) == hosts
