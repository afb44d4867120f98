"""Registers strato's PSI/J executor (``pip install strato[psij]``).

PSI/J scans the ``psij-descriptors`` namespace package in every folder of
``sys.path`` and registers the executors listed here, so that
``psij.JobExecutor.get_instance("strato")`` finds `strato.psij_executor`.
This folder must have no ``__init__.py`` (other packages add to it).
"""

from packaging.version import Version
from psij.descriptor import Descriptor

__PSI_J_EXECUTORS__ = [
    Descriptor(name="strato", nice_name="strato", version=Version("0.1.0"),
               cls="strato.psij_executor.StratoJobExecutor"),
]
