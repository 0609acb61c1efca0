"""Every public name of the ckpt package has a docstring: the functions and classes in
ckpt.__all__, and the public methods and properties of those classes (help() and IDEs show
them; docs/python.md is written from them)."""

import inspect

import ckpt

CONSTANTS = {"EXIT_MORE_WORK", "__version__"}


def undocumented():
    missing = []
    for name in ckpt.__all__:
        obj = getattr(ckpt, name)
        if name in CONSTANTS:
            continue
        if not (inspect.getdoc(obj) or "").strip():
            missing.append(name)
        if not inspect.isclass(obj) or obj.__module__.startswith("builtins"):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_"):
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if callable(value) or isinstance(value, property):
                if not (inspect.getdoc(value) or "").strip():
                    missing.append(f"{name}.{attr}")
    return missing


def test_every_public_name_has_a_docstring():
    assert undocumented() == []


def test_all_names_exist():
    assert all(hasattr(ckpt, n) for n in ckpt.__all__)
