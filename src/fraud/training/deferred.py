"""Deferred imports: modules Keras imports at start-up but the pipeline never uses.

`import keras` (3.x) imports IPython (for notebook display in `keras.saving`) and
matplotlib.pyplot (for `keras.visualization`) whether or not they are used: ~0.5 s of every
TensorFlow process's start-up (bench/NOTES.md, section 8). Registered here first, such a
module is an empty module object whose code runs on its first attribute access, so nothing
changes for code that does use it; a module already imported (in a notebook, IPython is) is
left alone.

The standard library's `importlib.util.LazyLoader` does not do for this: its module loads on
any attribute access, and the `import` statement reads `__spec__` (is the module still
initialising?), TensorFlow's autograph the `__file__` of every module.
"""

from __future__ import annotations

import importlib.util
import sys
import types

KERAS_UNUSED = ("IPython", "matplotlib.pyplot")


# What the import system sets before a module's code runs (importlib's module_from_spec): read
# without running it. TensorFlow's autograph reads `__file__` of every module in sys.modules
# when it converts a function; `isinstance` falls back to `__class__`.
METADATA = frozenset({"__spec__", "__name__", "__file__", "__path__", "__loader__",
                      "__package__", "__cached__", "__class__"})


class _DeferredModule(types.ModuleType):
    """A module whose code runs on the first access to an attribute other than its metadata."""

    def __getattribute__(self, attr: str) -> object:
        if attr in METADATA:
            return super().__getattribute__(attr)
        self.__class__ = types.ModuleType  # from here on, an ordinary module
        spec = self.__spec__
        assert spec is not None and spec.loader is not None
        spec.loader.exec_module(self)
        return getattr(self, attr)


def defer_imports(names: tuple[str, ...] = KERAS_UNUSED) -> list[str]:
    """Registers each module not yet imported as deferred; returns those it deferred. A module
    that is not installed is skipped (its importer then sees the usual ImportError)."""
    deferred = []
    for name in names:
        if name in sys.modules:
            continue
        spec = importlib.util.find_spec(name)  # imports the parent package, if any
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            continue
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _DeferredModule
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:  # as the import system does for a submodule: `matplotlib.pyplot` works
            setattr(sys.modules[parent], child, module)
        deferred.append(name)
    return deferred
