"""Users' own code: modules that register agents, environment kinds, models or problem families.

A plugin is an ordinary Python module whose import calls ``register_agent``, ``register_env_kind``,
``register_model`` or ``register_problem``. It is loaded before the config is validated, from
``--import MODULE`` on the command line (a dotted module name importable from the current folder or
``PYTHONPATH``, or a path to a ``.py`` file) or from an installed package's entry point in the group
:data:`ENTRY_POINT_GROUP`. Nothing named in a run directory is ever imported: a config can only use
what the user loaded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from amorctl.run.errors import AmorctlError

ENTRY_POINT_GROUP = "amorctl.plugins"
"""Installed packages list their registering modules under this entry-point group."""


class PluginError(AmorctlError):
    """A plugin module cannot be found or fails while it is imported."""


def load_plugins(modules: list[str] | tuple[str, ...] = (), *, installed: bool = True) -> list[ModuleType]:
    """Import every ``--import`` module (names or ``.py`` paths) and, with ``installed``, every entry point."""
    loaded = []
    if installed:
        for entry in entry_points(group=ENTRY_POINT_GROUP):
            loaded.append(_guarded(entry.value, entry.load))
    for name in modules:
        loaded.append(_guarded(name, lambda name=name: import_plugin(name)))
    return loaded


def import_plugin(name: str) -> ModuleType:
    """Import a dotted module name (the current folder searched first) or a ``.py`` file by path."""
    path = Path(name)
    if path.suffix == ".py":
        if not path.is_file():
            raise PluginError(f"--import {name}: no such file")
        module_name = path.stem
        spec = importlib.util.spec_from_file_location(module_name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        return module
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    return importlib.import_module(name)


def _guarded(name: str, load) -> ModuleType:
    try:
        return load()
    except PluginError:
        raise
    except ModuleNotFoundError as error:
        raise PluginError(f"--import {name}: module {error.name!r} cannot be found") from None
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else ""
        raise PluginError(f"plugin {name!r} failed while it was imported ({type(error).__name__}: {first})") from None
