"""Start-up validation of a composed config, before any data is read or any model is built.

Hydra already rejects unknown keys given on the command line (``trainer.max_epoch=3``) and unknown
group options (``model=nope``). What it cannot see is whether the values fit the objects they
configure. Every node with a ``_target_`` is checked against the signature of the callable it
names: keys the callable does not accept are errors (with a did-you-mean), and values are checked
against the parameter's type annotation with pydantic, so ranges declared in our own classes as
``Annotated[float, Field(gt=0)]`` are enforced with the key path in the message.
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any

from hydra.utils import get_object
from omegaconf import DictConfig, OmegaConf
from pydantic import ConfigDict, TypeAdapter, ValidationError

from recsci.core.errors import ConfigError

# Top-level keys a run config may hold, with what each is for (shown when a key is unknown).
TOP_LEVEL_KEYS: dict[str, str] = {
    "task_name": "name of the entry point (train)",
    "experiment_name": "name of the experiment; W&B group and output folder",
    "problem": "graph | delayed | uncertainty; W&B job_type",
    "tags": "list of tags for trackers",
    "seed": "integer seed (0 is a seed), or null to draw and record one",
    "train": "run trainer.fit",
    "test": "run trainer.test on the best checkpoint",
    "ckpt_path": "checkpoint to resume from",
    "resume": "resume the latest interrupted run of this experiment from its last.ckpt",
    "optimized_metric": "metric returned to sweepers, e.g. val/auc",
    "data": "config group",
    "model": "config group",
    "sampler": "config group",
    "protocol": "config group: what the run does (fit/test, streaming, ...)",
    "trainer": "config group",
    "logger": "config group",
    "callbacks": "config group",
    "paths": "config group",
    "extras": "misc run options",
    "hparams_search": "config group (sweeps)",
    "experiment": "config group",
}

_LAX = ConfigDict(arbitrary_types_allowed=True)


def validate_config(cfg: DictConfig) -> None:
    """Raise one :class:`ConfigError` listing every problem found in ``cfg``."""
    problems = list(_top_level_problems(cfg))
    container = OmegaConf.to_container(cfg, resolve=True, throw_on_missing=False)
    for path, node in _target_nodes(container, ""):
        problems.extend(_target_node_problems(path, node))
    if problems:
        raise ConfigError("Invalid config:\n" + "\n".join(f"  - {p}" for p in problems))


def _top_level_problems(cfg: DictConfig) -> Iterator[str]:
    for key in cfg:
        if key not in TOP_LEVEL_KEYS:
            yield unknown_key_message(str(key), TOP_LEVEL_KEYS, "the run config")
    seed = cfg.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool) or seed < 0):
        yield f"seed={seed!r}: must be an integer >= 0 (or null to draw one)"


def _target_nodes(node: Any, path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every mapping with a ``_target_`` in the tree, with its dotted key path."""
    if isinstance(node, Mapping):
        if "_target_" in node:
            yield path, node
        for key, child in node.items():
            yield from _target_nodes(child, f"{path}.{key}" if path else str(key))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            yield from _target_nodes(child, f"{path}[{index}]")


def _target_node_problems(path: str, node: Mapping[str, Any]) -> Iterator[str]:
    target_name = node["_target_"]
    try:
        target = get_object(target_name)
    except Exception as err:  # hydra raises ImportError/ValueError subclasses depending on the failure
        yield f"{path}._target_={target_name!r}: cannot be imported ({err})"
        return
    parameters, accepts_any = _parameters(target)
    if parameters is None:
        return
    hints = _type_hints(target)
    for key, value in node.items():
        if key.startswith("_"):
            continue
        key_path = f"{path}.{key}" if path else key
        if key not in parameters:
            if not accepts_any:
                yield unknown_key_message(key, parameters, f"'{target_name}'", key_path)
            continue
        if isinstance(value, Mapping) and "_target_" in value:
            continue  # built by instantiate and checked as its own node
        annotation = hints.get(key)
        if annotation is not None:
            problem = _type_problem(annotation, value)
            if problem:
                yield f"{key_path}={value!r}: {problem}"


def _parameters(target: Any) -> tuple[dict[str, inspect.Parameter] | None, bool]:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None, True
    params = {
        n: p for n, p in signature.parameters.items() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return params, accepts_any


@lru_cache(maxsize=256)
def _type_hints(target: Any) -> dict[str, Any]:
    function = target.__init__ if inspect.isclass(target) else target
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception:
        # Third-party signatures may use names only importable under TYPE_CHECKING; skip type checks there.
        return {}


@lru_cache(maxsize=1024)
def _adapter(annotation: Any) -> TypeAdapter | None:
    try:
        return TypeAdapter(annotation, config=_LAX)
    except Exception:
        return None


def _type_problem(annotation: Any, value: Any) -> str | None:
    try:
        adapter = _adapter(annotation)
    except TypeError:  # unhashable annotation objects
        adapter = None
    if adapter is None:
        return None
    try:
        adapter.validate_python(value)
    except ValidationError as err:
        details = "; ".join(e["msg"] for e in err.errors()[:3])
        return f"{details} (expected {_describe(annotation)})"
    except Exception:
        return None
    return None


def _describe(annotation: Any) -> str:
    """A readable type with its bounds, e.g. ``float > 0`` for ``Annotated[float, Field(gt=0)]``."""
    origin = typing.get_origin(annotation)
    if origin is None:
        return getattr(annotation, "__name__", repr(annotation))
    if origin is not typing.Annotated:
        return repr(annotation).replace("typing.", "")
    base, *metadata = typing.get_args(annotation)
    bounds = []
    for item in metadata:
        for constraint in getattr(item, "metadata", [item]):
            for attr, symbol in _BOUND_SYMBOLS.items():
                if getattr(constraint, attr, None) is not None:
                    bounds.append(f"{symbol} {getattr(constraint, attr)}")
    return " ".join([_describe(base), ", ".join(bounds)]).strip()


_BOUND_SYMBOLS = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}


def unknown_key_message(key: str, valid: Mapping[str, Any], owner: str, key_path: str | None = None) -> str:
    """``<key path>: unknown key for <owner>. Did you mean '<closest>'? Valid keys: ...`` (the typo's message)."""
    listed = ", ".join(sorted(valid))
    return f"{key_path or key}: unknown key for {owner}.{did_you_mean(key, valid)} Valid keys: {listed}"


def did_you_mean(name: str, valid: Iterable[str]) -> str:
    """`` Did you mean '<closest>'?`` for a mistyped name, or "" when nothing valid is close."""
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def check_keys(path: Any, where: str, raw: Mapping[str, Any], known: tuple[str, ...], owner: str) -> None:
    """Refuse a key of ``raw`` (read from file ``path``, at ``where``) that is not in ``known``: a typo, named
    with the file and the closest known key."""
    for key in raw:
        if key not in known:
            raise ValueError(
                unknown_key_message(str(key), dict.fromkeys(known), owner, f"{path}: {where}{key}")
            )
