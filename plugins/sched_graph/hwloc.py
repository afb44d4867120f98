"""hwloc reader: a resource graph from an hwloc topology XML file (``-f hwloc``).

Fluxion hands the XML to libhwloc (2.x) and walks the loaded topology. This module
does the same with ``xml.etree`` in two steps:

1. **Load** the XML into an object tree the way hwloc 2 does: v1 documents are
   upgraded (``Socket`` is a package, attribute-less ``Cache`` objects get their
   level from ``depth``, children of a NUMA node move to its parent and the NUMA
   node becomes a memory child, behind a memory Group when its locality differs),
   I/O objects are filtered like ``HWLOC_TYPE_FILTER_KEEP_IMPORTANT`` (unimportant
   PCI classes and DMA OS devices are dropped, childless bridges removed),
   disallowed PUs are taken out of the cpusets, empty objects are removed, and
   cache/group levels that add no structure are merged away
   (``HWLOC_TYPE_FILTER_KEEP_STRUCTURE``). Logical indexes follow hwloc: per level
   from left to right for normal objects, depth-first order for NUMA nodes and OS
   devices.
2. **Walk** it as Fluxion's reader does: children in hwloc order (normal, then
   memory, then I/O, then Misc), one vertex per supported object, children of an
   unsupported or non-allow-listed object attached to the nearest kept ancestor.

Vertex mapping (the allow-list from ``-W`` applies to the names in brackets):
Machine with a ``HostName`` -> ``node`` [node] named after the host, its id the
host's numeric suffix, rank 0; Group -> ``group`` [group]; NUMA node -> ``numanode``
[numanode]; Package -> ``socket`` [socket]; L1/L2/L3 caches -> ``cache`` with
basename ``L<n>cache`` [L<n>cache] and size in KiB; Core -> ``core`` [core]; PU ->
``pu`` [pu]; co-processor OS devices (CUDA, OpenCL) and RSMI GPUs -> ``gpu`` [gpu]
with the id parsed from the device name; block OS devices -> ``storage``
[storage] with size ``Size`` kB / 10^6 (GB) and a ``LinuxDeviceID`` property.
NVML and other GPU OS devices, PCI objects, Misc, Die and memory-side caches get no
vertex. Every vertex but the node has rank -1, as in Fluxion's resource-query.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from .graph import ResourceGraph, Vertex

# hwloc object categories
NORMAL = ("Machine", "Package", "Die", "Core", "PU", "Group", "L1Cache", "L2Cache",
          "L3Cache", "L4Cache", "L5Cache", "L1iCache", "L2iCache", "L3iCache")
MEMORY = ("NUMANode", "MemCache")
IO = ("Bridge", "PCIDev", "OSDev")
CACHES = NORMAL[6:]

# osdev types (hwloc 2 numbering)
OSDEV_BLOCK, OSDEV_GPU, OSDEV_NETWORK, OSDEV_OPENFABRICS, OSDEV_DMA, OSDEV_COPROC = range(6)

# hwloc_type_sscanf names (lower case) -> type
_TYPE_NAMES = {
    "machine": "Machine", "system": "Machine", "package": "Package", "socket": "Package",
    "die": "Die", "core": "Core", "pu": "PU", "group": "Group", "numanode": "NUMANode",
    "node": "NUMANode", "memcache": "MemCache", "misc": "Misc", "bridge": "Bridge",
    "hostbridge": "Bridge", "pcibridge": "Bridge", "pcidev": "PCIDev", "osdev": "OSDev",
    "tile": "Group", "module": "Group", "cluster": "Group",
}
_CACHE_RE = re.compile(r"^l([1-5])([diu]?)cache$")

# priority used when two mergeable levels are identical (hwloc's obj_type_priority)
_PRIORITY = {"Machine": 90, "Package": 40, "Die": 30, "Core": 60, "PU": 100, "Group": 0,
             "L1Cache": 20, "L2Cache": 20, "L3Cache": 20, "L4Cache": 20, "L5Cache": 20,
             "L1iCache": 19, "L2iCache": 19, "L3iCache": 19}


class HwlocError(ValueError):
    """The XML is not a topology hwloc would load, or the walk failed."""


# -- bitmaps ---------------------------------------------------------------------
_INFINITE_BITS = 1 << 16


def parse_bitmap(text: str | None) -> int | None:
    """An hwloc bitmap string (``0xffffffff,,0x00000101``) as an int."""
    if text is None:
        return None
    value = 0
    for word in text.strip().split(","):
        word = word.strip()
        if word.lower() == "0xf...f":  # infinitely set
            value = (1 << _INFINITE_BITS) - 1
            continue
        value = (value << 32) | (int(word, 16) & 0xFFFFFFFF if word else 0)
    return value


def _first(bits: int | None) -> int:
    """First set bit; an empty set sorts after every non-empty one."""
    if not bits:
        return 1 << 62
    return (bits & -bits).bit_length() - 1


class HwObj:
    """One hwloc object of the loaded topology."""

    __slots__ = ("type", "os_index", "name", "subtype", "cpuset", "complete_cpuset",
                 "nodeset", "complete_nodeset", "infos", "osdev_type", "pci_class",
                 "cache_depth", "cache_type", "cache_size", "parent", "children", "memory",
                 "io", "misc", "logical_index", "dont_merge")

    def __init__(self, type_: str = "") -> None:
        self.type = type_
        self.os_index = -1
        self.name: str | None = None
        self.subtype: str | None = None
        self.cpuset: int | None = None
        self.complete_cpuset: int | None = None
        self.nodeset: int | None = None
        self.complete_nodeset: int | None = None
        self.infos: list[tuple[str, str]] = []
        self.osdev_type = -1
        self.pci_class = 0
        self.cache_depth = 0
        self.cache_type = 0
        self.cache_size = 0
        self.parent: HwObj | None = None
        self.children: list[HwObj] = []
        self.memory: list[HwObj] = []
        self.io: list[HwObj] = []
        self.misc: list[HwObj] = []
        self.logical_index = 0
        self.dont_merge = False

    def info(self, name: str) -> str | None:
        for k, v in self.infos:
            if k == name:
                return v
        return None

    def all_children(self) -> list[HwObj]:
        """hwloc_get_next_child order: normal, memory, I/O, Misc."""
        return self.children + self.memory + self.io + self.misc

    def __repr__(self) -> str:  # pragma: no cover - debugging aid
        return f"HwObj({self.type} L#{self.logical_index} {self.name or ''})"


def _category(t: str) -> str:
    if t in MEMORY:
        return "memory"
    if t in IO:
        return "io"
    if t == "Misc":
        return "misc"
    return "normal"


def _insert_by_parent(parent: HwObj, obj: HwObj) -> None:
    obj.parent = parent
    getattr(parent, {"normal": "children", "memory": "memory", "io": "io",
                     "misc": "misc"}[_category(obj.type)]).append(obj)


def _keep(obj: HwObj) -> bool:
    """The type filters Fluxion sets (I/O: important only; Misc: none)."""
    t = obj.type
    if t == "PCIDev":
        base = obj.pci_class >> 8
        return (base in (0x00, 0x01, 0x02, 0x03, 0x06, 0x0B, 0x12)
                or obj.pci_class in (0x0C04, 0x0C06, 0x0502))
    if t == "OSDev":
        return obj.osdev_type != OSDEV_DMA
    return t not in ("Misc", "MemCache")


class _Loader:
    def __init__(self, root: ET.Element) -> None:
        version = root.get("version", "1.0")
        try:
            self.major = int(version.split(".")[0])
        except ValueError:
            self.major = 1
        self.allowed_cpuset: int | None = None

    # -- import ---------------------------------------------------------------------
    def _parse_type(self, elem: ET.Element, parent: HwObj | None) -> tuple[str, bool]:
        raw = elem.get("type")
        if raw is None:
            raise HwlocError("object without a type")
        low = raw.lower()
        if low == "cache":
            return "", True  # v1 attribute-less cache, fixed from depth/cache_type
        if low == "system" and parent is not None:
            raise HwlocError("obsolete System object only allowed at root")
        t = _TYPE_NAMES.get(low)
        if t is None:
            m = _CACHE_RE.match(low)
            if not m:
                raise HwlocError(f"unrecognized object type string {raw}")
            t = f"L{m.group(1)}{'i' if m.group(2) == 'i' else ''}Cache"
            if t not in NORMAL:
                raise HwlocError(f"unrecognized object type string {raw}")
        return t, False

    def import_object(self, elem: ET.Element, parent: HwObj | None) -> HwObj | None:
        t, old_cache = self._parse_type(elem, parent)
        obj = HwObj(t)
        obj.parent = parent
        a = elem.attrib
        if "os_index" in a:
            obj.os_index = int(a["os_index"])
        obj.name = a.get("name")
        obj.subtype = a.get("subtype")
        obj.cpuset = parse_bitmap(a.get("cpuset"))
        obj.complete_cpuset = parse_bitmap(a.get("complete_cpuset"))
        obj.nodeset = parse_bitmap(a.get("nodeset"))
        obj.complete_nodeset = parse_bitmap(a.get("complete_nodeset"))
        if parent is None and "allowed_cpuset" in a:
            self.allowed_cpuset = parse_bitmap(a["allowed_cpuset"])
        if "osdev_type" in a:
            obj.osdev_type = int(a["osdev_type"])
        if "pci_type" in a:
            try:
                obj.pci_class = int(a["pci_type"].split()[0], 16)
            except (ValueError, IndexError):
                obj.pci_class = 0
        if "depth" in a:
            obj.cache_depth = int(a["depth"])
        if "cache_type" in a:
            obj.cache_type = int(a["cache_type"])
        if "cache_size" in a:
            obj.cache_size = int(a["cache_size"])
        obj.dont_merge = a.get("dont_merge", "0") not in ("0", "")
        for child in elem:
            if child.tag == "info":
                obj.infos.append((child.get("name", ""), child.get("value", "")))

        if parent is not None and obj.type == "Machine":
            obj.type = "Group"  # non-root Machine objects become Groups
        ignored = False
        if self.major < 2:
            if parent is not None and parent.type == "NUMANode":
                parent = parent.parent
            if obj.type == "NUMANode" and parent is not None \
                    and obj.complete_cpuset != parent.complete_cpuset:
                group = HwObj("Group")
                group.cpuset = group.complete_cpuset = obj.cpuset
                group.nodeset = obj.nodeset
                group.complete_nodeset = obj.complete_nodeset
                _insert_by_parent(parent, group)
                parent = group
            if old_cache:
                depth = obj.cache_depth
                if obj.cache_type == 2:
                    obj.type = f"L{depth}iCache" if 1 <= depth <= 3 else ""
                else:
                    obj.type = f"L{depth}Cache" if 1 <= depth <= 5 else ""
                if not obj.type:
                    raise HwlocError(f"invalid cache depth {depth}")
            if obj.type == "Misc" and obj.cpuset is not None:
                obj.type = "Group"
            if (obj.cpuset is None) != (obj.complete_cpuset is None) \
                    or (obj.nodeset is None) != (obj.complete_nodeset is None) \
                    or (obj.nodeset is not None and obj.cpuset is None):
                if obj.type != "Group":
                    raise HwlocError(f"invalid object {obj.type} with some missing sets")
                ignored = True
        elif old_cache:
            raise HwlocError("unrecognized object type string Cache")
        if self.major >= 3 and obj.type == "OSDev":
            obj.osdev_type = _osdev_from_v3(obj.osdev_type, obj.subtype)
        if obj.type == "NUMANode" and obj.nodeset is None:
            raise HwlocError(f"invalid NUMA node object P#{obj.os_index} without nodeset")
        if not _keep(obj) and parent is not None:
            ignored = True
        if parent is not None and not ignored:
            _insert_by_parent(parent, obj)
        holder = parent if ignored else obj
        for child in elem:
            if child.tag == "object":
                self.import_object(child, holder)
        if ignored:
            return None
        kids = obj.children
        if any(_first(kids[i + 1].complete_cpuset) < _first(kids[i].complete_cpuset)
               for i in range(len(kids) - 1)):
            _reorder_children(obj)
        return obj

    # -- post-processing --------------------------------------------------------------
    def finish(self, root: HwObj) -> HwObj:
        allowed = self.allowed_cpuset
        if allowed is None:
            allowed = root.cpuset if root.cpuset is not None else 0
        if root.cpuset is not None:
            allowed &= root.cpuset
        _restrict_sets(root, allowed)
        if not root.cpuset:
            raise HwlocError("Topology has no allowed PU")
        _filter_bridges(root)
        if _remove_empty(root):
            raise HwlocError("Topology became empty")
        levels = _connect_levels(root)
        _filter_levels_keep_structure(levels)
        for level in levels:
            for i, o in enumerate(level):
                o.logical_index = i
        counters: dict[str, int] = {}
        for o in _special_dfs(root):
            o.logical_index = counters.get(o.type, 0)
            counters[o.type] = o.logical_index + 1
        return root


def _osdev_from_v3(bits: int, subtype: str | None) -> int:
    if bits < 0:
        return -1
    if bits & 3:
        return OSDEV_BLOCK
    if bits & 8:
        return OSDEV_GPU if subtype in ("RSMI", "NVML") else OSDEV_COPROC
    if bits & 4:
        return OSDEV_GPU
    if bits & 32:
        return OSDEV_OPENFABRICS
    if bits & 16:
        return OSDEV_OPENFABRICS if subtype == "BXI" else OSDEV_NETWORK
    if bits & 64:
        return OSDEV_DMA
    return -1


def _reorder_children(obj: HwObj) -> None:
    """hwloc__reorder_children: insertion by first bit of the complete cpuset."""
    ordered: list[HwObj] = []
    for child in obj.children:
        key = _first(child.complete_cpuset if child.complete_cpuset is not None
                     else child.cpuset)
        pos = 0
        while pos < len(ordered):
            other = ordered[pos]
            okey = _first(other.complete_cpuset if other.complete_cpuset is not None
                          else other.cpuset)
            if not key > okey:
                break
            pos += 1
        ordered.insert(pos, child)
    obj.children = ordered


def _restrict_sets(obj: HwObj, allowed: int) -> None:
    if obj.cpuset is not None:
        obj.cpuset &= allowed
    for child in obj.children + obj.memory:
        _restrict_sets(child, allowed)


def _is_useless_bridge(o: HwObj) -> bool:
    if o.io:
        return False
    if o.type == "Bridge":
        return True
    return o.type == "PCIDev" and (o.pci_class >> 8) == 0x06 and o.subtype != "NVSwitch"


def _filter_io(obj: HwObj) -> None:
    kept = []
    for child in obj.io:
        _filter_io(child)
        if not _is_useless_bridge(child):
            kept.append(child)
    obj.io = kept


def _filter_bridges(obj: HwObj) -> None:
    for child in obj.children:
        _filter_bridges(child)
    _filter_io(obj)


def _remove_empty(obj: HwObj) -> bool:
    """Drop childless normal objects with no PU (memory: no node); True: drop obj."""
    obj.children = [c for c in obj.children if not _remove_empty(c)]
    obj.memory = [c for c in obj.memory if not _remove_empty(c)]
    if obj.children or obj.memory or obj.io:
        return False
    if obj.type in MEMORY:
        return not obj.nodeset
    return not obj.cpuset


def _same_level_type(a: HwObj, b: HwObj) -> bool:
    return a.type == b.type


def _contains_type(obj: HwObj, other: HwObj) -> bool:
    for child in obj.children:
        if _same_level_type(child, other) or _contains_type(child, other):
            return True
    return False


def _connect_levels(root: HwObj) -> list[list[HwObj]]:
    """hwloc_connect_levels: normal objects grouped into levels, left to right."""
    levels = [[root]]
    objs = list(root.children)
    while objs:
        top = next((o for o in objs if o.type != "PU"), objs[0])
        for o in objs:
            if not _same_level_type(top, o) and _contains_type(o, top):
                top = o
        taken, new = [], []
        for o in objs:
            if _same_level_type(top, o):
                taken.append(o)
                new.extend(o.children)
            else:
                new.append(o)
        levels.append(taken)
        objs = new
    return levels


def _filter_levels_keep_structure(levels: list[list[HwObj]]) -> None:
    """hwloc_filter_levels_keep_structure: merge cache/group levels adding no structure.

    One bottom-up pass over the levels, as hwloc does it; ``levels`` is updated.
    """
    i = len(levels) - 1
    while i > 0:
        upper, lower = levels[i - 1], levels[i]
        t1, t2 = upper[0].type, lower[0].type
        i -= 1
        replace_parent = (t1 in CACHES or t1 == "Group") \
            and not (t1 == "Group" and any(o.dont_merge for o in upper))
        replace_child = (t2 in CACHES or t2 == "Group") \
            and not (t1 == "Group" and any(o.dont_merge for o in lower))
        if not replace_child and not replace_parent:
            if t1 == "Package" and t2 == "Die":
                replace_child = True
            else:
                continue
        if replace_parent and replace_child:
            if _PRIORITY.get(t1, 0) >= _PRIORITY.get(t2, 0):
                replace_parent = False
            else:
                replace_child = False
        if len(upper) != len(lower):
            continue
        pairs = list(zip(upper, lower, strict=True))
        if any(lo.parent is not up or len(up.children) != 1 for up, lo in pairs):
            continue
        if t2 == "PU" and any(up.memory for up in upper):
            continue
        if replace_parent and any(up.parent is None for up in upper):
            continue  # the root is a Machine, never a cache or a group
        for up, lo in pairs:
            if replace_child:
                up.children = lo.children
                for c in up.children:
                    c.parent = up
                for attr in ("memory", "io", "misc"):
                    extra = getattr(lo, attr)
                    for c in extra:
                        c.parent = up
                    setattr(up, attr, getattr(up, attr) + extra)
            else:
                grand = up.parent
                grand.children[grand.children.index(up)] = lo
                lo.parent = grand
                for attr in ("memory", "io", "misc"):
                    extra = getattr(up, attr)
                    for c in extra:
                        c.parent = lo
                    setattr(lo, attr, extra + getattr(lo, attr))
        del levels[i if replace_parent else i + 1]


def _special_dfs(obj: HwObj):
    """NUMA nodes, memory-side caches and I/O objects in hwloc's listing order."""
    if obj.type in MEMORY or obj.type in IO:
        yield obj
    if obj.type in IO:
        kids = obj.io + obj.misc
    elif obj.type == "NUMANode":
        kids = obj.misc
    else:
        kids = obj.all_children()
    for child in kids:
        yield from _special_dfs(child)


def load_topology(text: str) -> HwObj:
    """Parse hwloc XML and return the root of the loaded topology."""
    try:
        doc = ET.fromstring(text)
    except ET.ParseError as exc:
        raise HwlocError(f"XML parse error: {exc}") from exc
    if doc.tag != "topology":
        raise HwlocError("XML root is not a topology")
    first = next((e for e in doc if e.tag == "object"), None)
    if first is None:
        raise HwlocError("topology has no root object")
    loader = _Loader(doc)
    try:
        root = loader.import_object(first, None)
    except (ValueError, KeyError) as exc:
        if isinstance(exc, HwlocError):
            raise
        raise HwlocError(f"invalid attribute: {exc}") from exc
    assert root is not None
    if root.type != "Machine":
        raise HwlocError(f"root object is a {root.type}, not a Machine")
    return loader.finish(root)


# -- Fluxion's walk -------------------------------------------------------------------
def split_hostname(host: str) -> tuple[str, int]:
    """Fluxion's split_hostname: basename and numeric suffix (-1 when none)."""
    m = re.search(r"\d+$", host)
    if not m:
        return host, -1
    if m.start() == 0:
        basename, suffix = host, host
    else:
        basename, suffix = host[:m.start()], m.group(0)
    stripped = suffix.lstrip("0")
    return basename, int(stripped) if stripped else 0


def _atoi(s: str) -> int:
    m = re.match(r"\s*([+-]?\d+)", s)
    return int(m.group(1)) if m else 0


class HwlocReader:
    """Fluxion's resource_reader_hwloc_t over a loaded topology."""

    def __init__(self, allowlist: str = "") -> None:
        self.allow = {t for t in allowlist.split(",") if t}
        self.node_rank = -1
        self.errors: list[str] = []

    def allowed(self, t: str) -> bool:
        return not self.allow or t in self.allow

    def _map(self, obj: HwObj) -> tuple[str, str, str, int, int, dict[str, str]] | None:
        """(type, basename, name, id, size, properties) for a supported object."""
        t = obj.type
        oid = obj.logical_index
        if t == "Machine":
            host = obj.info("HostName")
            if not host or not self.allowed("node"):
                return None
            basename, oid = split_hostname(host)
            return "node", basename, host, oid, 1, {}
        simple = {"Group": "group", "NUMANode": "numanode", "Package": "socket",
                  "Core": "core", "PU": "pu"}
        if t in simple:
            rtype = simple[t]
            allow_name = rtype
            if not self.allowed(allow_name):
                return None
            return rtype, rtype, "", oid, 1, {}
        if t in ("L1Cache", "L2Cache", "L3Cache"):
            basename = t[:2] + "cache"
            if not self.allowed(basename):
                return None
            return "cache", basename, "", oid, obj.cache_size // 1024, {}
        if t == "OSDev":
            name = obj.name or ""
            if obj.osdev_type == OSDEV_COPROC or (obj.osdev_type == OSDEV_GPU
                                                  and name.startswith("rsmi")):
                if not self.allowed("gpu"):
                    return None
                if name.startswith("cuda") or name.startswith("rsmi"):
                    oid = _atoi(name[4:])
                elif name.startswith("opencl"):
                    d = name.find("d", 6)
                    if d >= 0:
                        oid = _atoi(name[d + 1:])
                return "gpu", "gpu", "", oid, 1, {}
            if obj.osdev_type == OSDEV_BLOCK:
                if not self.allowed("storage"):
                    return None
                size_str = obj.info("Size")
                if size_str is None:
                    self.errors.append("Error getting the size of block storage device; ")
                    return None
                kbytes = _atoi(size_str)
                if kbytes == 0:
                    self.errors.append("Error parsing the size of block storage device; ")
                    return None
                dev = obj.info("LinuxDeviceID")
                return ("storage", "storage", "", oid, kbytes // 1000000,
                        {"LinuxDeviceID": dev if dev is not None else "-1"})
        return None

    def add_vertex(self, g: ResourceGraph, parent: Vertex, type_: str, basename: str,
                   name: str, id_: int, size: int, props: dict[str, str],
                   rank: int) -> Vertex:
        if type_ == "node" and rank == -1:
            self.node_rank += 1
            rank = self.node_rank
        name = name or (basename + (str(id_) if id_ != -1 else ""))
        v = g.add_vertex(type_, basename, name, id_, rank, size)
        v.properties = dict(props)
        v.paths["containment"] = parent.paths["containment"] + "/" + name
        v.member_of["containment"] = "*"
        g.index_vertex(v, "containment")
        g.add_edge(parent, v, "containment", fresh=True)
        return v

    def walk(self, g: ResourceGraph, obj: HwObj, parent: Vertex, rank: int) -> None:
        stack = [(obj, parent)]
        while stack:
            o, p = stack.pop()
            mapped = self._map(o)
            anchor = p
            if mapped is not None:
                anchor = self.add_vertex(g, p, *mapped, rank=rank)
            for child in reversed(o.all_children()):
                stack.append((child, anchor))

    def unpack(self, text: str, rank: int = -1) -> ResourceGraph:
        g = ResourceGraph()
        root = g.add_cluster_root()
        if text:
            try:
                topo = load_topology(text)
            except HwlocError as exc:
                raise HwlocError(f"Error hwloc load: rank {rank}; ({exc})") from exc
            self.walk(g, topo, root, rank)
            if self.errors:
                raise HwlocError("".join(self.errors) + f"Error hwloc walk: rank {rank}; ")
        g.initialize_node_stats()
        return g


def load_hwloc(text: str, allowlist: str = "") -> ResourceGraph:
    """Build a resource graph from hwloc XML text (``resource-query -f hwloc``)."""
    return HwlocReader(allowlist).unpack(text)
