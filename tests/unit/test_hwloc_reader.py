"""The hwloc XML reader (``resource-query -f hwloc``)."""

from __future__ import annotations

import pytest

from strato.cli.resource_query import SessionError, load_graph
from strato.plugins.sched_graph.hwloc import (
    HwlocError,
    load_hwloc,
    load_topology,
    parse_bitmap,
    split_hostname,
)

SETS = 'nodeset="0x1" complete_nodeset="0x1"'


def _obj(type_: str, cpuset: str, body: str = "", extra: str = "") -> str:
    return (f'<object type="{type_}" cpuset="{cpuset}" complete_cpuset="{cpuset}" '
            f'{SETS} {extra}>{body}</object>')


def _core(os_index: int, bit: int) -> str:
    cs = hex(1 << bit)
    pu = _obj("PU", cs, extra=f'os_index="{bit}"')
    l1 = _obj("Cache", cs, _obj("Core", cs, pu, f'os_index="{os_index}"'),
              'depth="1" cache_size="32768" cache_type="1"')
    return _obj("Cache", cs, l1, 'depth="2" cache_size="262144" cache_type="0"')


def _osdev(name: str, osdev_type: int, infos: str = "") -> str:
    return f'<object type="OSDev" name="{name}" osdev_type="{osdev_type}">{infos}</object>'


def _pci(pci_class: str, body: str) -> str:
    return (f'<object type="PCIDev" pci_busid="0000:01:00.0" '
            f'pci_type="{pci_class} [10de:1db5] [10de:1249] a1">{body}</object>')


IO_BLOCK = _pci("0108", _osdev("nvme0n1", 0, '<info name="Size" value="1562813784"/>'
                                             '<info name="LinuxDeviceID" value="259:0"/>'))
IO_GPU = _pci("0302", _osdev("cuda1", 5) + _osdev("opencl0d1", 5) + _osdev("nvml0", 1))
IO_DMA = _pci("0880", _osdev("dma0chan0", 4))  # unimportant class, DMA dropped
BRIDGE = ('<object type="Bridge" bridge_type="0-1" depth="0" '
          f'bridge_pci="0000:[00-08]">{IO_DMA}{IO_BLOCK}{IO_GPU}</object>')


def v1_xml(host: str | None = "quartz42", allowed: str = "0xf", bridge: str = BRIDGE) -> str:
    """Machine > 2 NUMA nodes > Socket > L3 > 2 x (L2 > L1 > Core > PU)."""
    info = f'<info name="HostName" value="{host}"/>' if host else ""
    sock0 = _obj("Socket", "0x3", _obj("Cache", "0x3", _core(0, 0) + _core(1, 1),
                                       'depth="3" cache_size="8388608"'), 'os_index="0"')
    sock1 = _obj("Socket", "0xc", _obj("Cache", "0xc", _core(2, 2) + _core(3, 3),
                                       'depth="3" cache_size="8388608"'), 'os_index="1"')
    numa0 = _obj("NUMANode", "0x3", sock0 + bridge,
                 'os_index="0" local_memory="1000"').replace(SETS, SETS)
    numa1 = _obj("NUMANode", "0xc", sock1, 'os_index="1" local_memory="1000"')
    numa1 = numa1.replace('nodeset="0x1" complete_nodeset="0x1"',
                          'nodeset="0x2" complete_nodeset="0x2"')
    machine = (f'<object type="Machine" os_index="0" cpuset="0xf" complete_cpuset="0xf" '
               f'allowed_cpuset="{allowed}" nodeset="0x3" complete_nodeset="0x3">'
               f'{info}{numa0}{numa1}</object>')
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<!DOCTYPE topology SYSTEM "hwloc.dtd">\n'
            f'<topology>{machine}</topology>\n')


def names(g, type_=None):
    return [v.paths["containment"] for v in g.vertices if type_ in (None, v.type)]


def test_split_hostname():
    assert split_hostname("corona116") == ("corona", 116)
    assert split_hostname("cab0012") == ("cab", 12)
    assert split_hostname("node000") == ("node", 0)
    assert split_hostname("chimera") == ("chimera", -1)
    assert split_hostname("1234") == ("1234", 1234)


def test_parse_bitmap():
    assert parse_bitmap("0x0000ffff") == 0xFFFF
    assert parse_bitmap("0x00000001,0x00000000") == 1 << 32
    assert parse_bitmap("0xf0000000,,0x00000101") == (0xF0000000 << 64) | 0x101
    assert parse_bitmap(None) is None


def test_allowlisted_graph_vertices_paths_and_ranks():
    g = load_hwloc(v1_xml(), "cluster,node,socket,core,gpu,storage")
    assert names(g) == [
        "/cluster0",
        "/cluster0/quartz42",
        "/cluster0/quartz42/socket0",
        "/cluster0/quartz42/socket0/core0",
        "/cluster0/quartz42/socket0/core1",
        # I/O of NUMA node 0 follows its socket's cores
        "/cluster0/quartz42/socket0/storage0",
        "/cluster0/quartz42/socket0/gpu1",
        "/cluster0/quartz42/socket0/gpu1",
        "/cluster0/quartz42/socket1",
        "/cluster0/quartz42/socket1/core2",
        "/cluster0/quartz42/socket1/core3",
    ]
    node = g.vertices[1]
    assert (node.type, node.basename, node.id, node.rank) == ("node", "quartz", 42, 0)
    assert all(v.rank == -1 for v in g.vertices if v.type != "node")
    storage = g.vertices[g.by_type["storage"][0]]
    assert storage.size == 1562  # kB -> GB, base 10
    assert storage.properties == {"LinuxDeviceID": "259:0"}
    # NVML OS devices are not GPUs; CUDA and OpenCL co-processors both are
    assert [g.vertices[i].id for i in g.by_type["gpu"]] == [1, 1]
    assert g.nodes_up == 1
    assert [e.target for e in g.vertices[0].out] == [1]


def test_storage_id_is_logical_index_among_kept_os_devices():
    xml = v1_xml(bridge='<object type="Bridge" bridge_type="0-1" depth="0">'
                 + _pci("0200", _osdev("eth0", 2)) + IO_DMA + IO_BLOCK + "</object>")
    g = load_hwloc(xml, "cluster,node,storage")
    assert names(g, "storage") == ["/cluster0/quartz42/storage1"]


def test_disallowed_pus_remove_their_cores():
    g = load_hwloc(v1_xml(allowed="0xe"), "cluster,node,core")
    assert names(g, "core") == [f"/cluster0/quartz42/core{i}" for i in range(3)]


def test_without_hostname_children_hang_off_the_cluster():
    g = load_hwloc(v1_xml(host=None), "cluster,node,core")
    assert names(g, "core")[0] == "/cluster0/core0"
    assert "node" not in g.by_type


def test_without_allowlist_structure_only_caches_are_merged():
    g = load_hwloc(v1_xml())
    types = {v.type for v in g.vertices}
    assert "cache" not in types  # every cache level mirrors a core or socket level
    assert {"cluster", "node", "socket", "core", "pu", "numanode", "gpu", "storage"} <= types
    # the memory Group hwloc puts above a v1 NUMA node merges into the package
    assert names(g, "numanode")[0] == "/cluster0/quartz42/socket0/numanode0"
    pu = g.vertices[g.by_type["pu"][3]]
    assert pu.paths["containment"] == "/cluster0/quartz42/socket1/core3/pu3"


def test_cache_vertices_when_allowed():
    l3s = "".join(_obj("Cache", cs, _core(2 * i, 2 * i) + _core(2 * i + 1, 2 * i + 1),
                       'depth="3" cache_size="8388608"')
                  for i, cs in enumerate(("0x3", "0xc")))
    xml = ('<topology><object type="Machine" os_index="0" cpuset="0xf" '
           'complete_cpuset="0xf" nodeset="0x1" complete_nodeset="0x1">'
           '<info name="HostName" value="q1"/>'
           + _obj("NUMANode", "0xf", _obj("Socket", "0xf", l3s), 'os_index="0"')
           + "</object></topology>")
    g = load_hwloc(xml, "cluster,node,L3cache,L2cache,core")
    # L3 caches add structure (two per socket); L2 caches mirror cores and are merged
    assert names(g, "core") == [f"/cluster0/q1/L3cache{i // 2}/core{i}" for i in range(4)]
    l3 = g.vertices[g.by_type["cache"][0]]
    assert (l3.basename, l3.size) == ("L3cache", 8192)
    assert len(g.by_type["cache"]) == 2


def test_v2_numa_nodes_are_memory_children():
    cs = 'cpuset="0x3" complete_cpuset="0x3" nodeset="0x1" complete_nodeset="0x1"'
    xml = ('<?xml version="1.0"?><topology version="2.0">'
           f'<object type="Machine" os_index="0" {cs} gp_index="1">'
           '<info name="HostName" value="tioga7"/>'
           f'<object type="Package" os_index="0" {cs} gp_index="2">'
           f'<object type="NUMANode" os_index="0" {cs} local_memory="10" gp_index="3"/>'
           '<object type="Core" os_index="0" cpuset="0x1" complete_cpuset="0x1" '
           'nodeset="0x1" complete_nodeset="0x1" gp_index="4">'
           '<object type="PU" os_index="0" cpuset="0x1" complete_cpuset="0x1" '
           'nodeset="0x1" complete_nodeset="0x1" gp_index="5"/></object>'
           '<object type="Core" os_index="1" cpuset="0x2" complete_cpuset="0x2" '
           'nodeset="0x1" complete_nodeset="0x1" gp_index="6">'
           '<object type="PU" os_index="1" cpuset="0x2" complete_cpuset="0x2" '
           'nodeset="0x1" complete_nodeset="0x1" gp_index="7"/></object>'
           '<object type="OSDev" gp_index="8" name="rsmi0" subtype="RSMI" osdev_type="1"/>'
           '</object></object></topology>')
    g = load_hwloc(xml, "cluster,node,socket,core,numanode,gpu")
    assert names(g) == ["/cluster0", "/cluster0/tioga7", "/cluster0/tioga7/socket0",
                        "/cluster0/tioga7/socket0/core0", "/cluster0/tioga7/socket0/core1",
                        "/cluster0/tioga7/socket0/numanode0", "/cluster0/tioga7/socket0/gpu0"]
    topo = load_topology(xml)
    assert [c.type for c in topo.children[0].all_children()] == [
        "Core", "Core", "NUMANode", "OSDev"]


@pytest.mark.parametrize("text", ["<topology>", "<graph/>", "<topology></topology>",
                                  '<topology><object type="Bogus"/></topology>'])
def test_bad_xml_is_a_one_line_error(text):
    with pytest.raises(HwlocError):
        load_hwloc(text)


def test_load_graph_dispatches_hwloc(tmp_path):
    f = tmp_path / "0.xml"
    f.write_text(v1_xml())
    g = load_graph(str(f), "hwloc", "cluster,node,core")
    assert len(g.by_type["core"]) == 4
    f.write_text("<topology")
    with pytest.raises(SessionError, match="error generating resources"):
        load_graph(str(f), "hwloc")
