"""Registers strato's PSI/J executor (``pip install strato[psij]``).

PSI/J scans the ``psij-descriptors`` namespace package in every folder of
``sys.path`` and registers the executors listed here, so that
``psij.JobExecutor.get_instance("strato")`` finds `strato.psij_executor`.
This folder must have no ``__init__.py`` (other packages add to it).

PSI/J loads an executor's file from the folder where it found its descriptor.
Installed from a wheel, strato sits beside this folder in site-packages. In an
editable install (``make`` links this file into the venv's site-packages),
strato's files are in the checkout, so the executor is registered from there.
"""

import importlib.util
import os

from packaging.version import Version
from psij.descriptor import Descriptor
from psij.job_executor import JobExecutor

_EXECUTOR = Descriptor(name="strato", nice_name="strato", version=Version("0.1.0"),
                       cls="strato.psij_executor.StratoJobExecutor")


def _strato_root() -> str:
    """The folder holding the ``strato`` package, wherever it was installed."""
    spec = importlib.util.find_spec("strato")
    return os.path.realpath(os.path.dirname(spec.submodule_search_locations[0]))


_HERE = os.path.realpath(os.path.dirname(os.path.dirname(__file__)))
if _strato_root() == _HERE:
    __PSI_J_EXECUTORS__ = [_EXECUTOR]
else:
    _EXECUTOR.path = __file__
    JobExecutor.register_executor(_EXECUTOR, _strato_root())
    __PSI_J_EXECUTORS__ = []
