"""Turn ``hydra.sweeper.params`` (and sweep overrides on the command line) into Optuna distributions.

Expressions are parsed with Hydra's own override parser, so the accepted syntax is exactly Hydra's
sweep syntax:

=====================================  ==========================================================
expression                             distribution
=====================================  ==========================================================
``a,b,c`` / ``choice(a,b,c)``          ``CategoricalDistribution([a, b, c])``
``range(1,10)``                        ``IntDistribution(1, 9)`` (Python range: stop excluded)
``range(0,1,step=0.25)``               ``FloatDistribution(0.0, 0.75, step=0.25)``
``interval(0.1,1.0)``                  ``FloatDistribution(0.1, 1.0)``
``int(interval(1,10))``                ``IntDistribution(1, 10)``
``tag(log, interval(1e-4,1e-1))``      ``FloatDistribution(1e-4, 1e-1, log=True)``
anything else (``x=5``)                a fixed override passed unchanged to every trial
=====================================  ==========================================================
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, Override, RangeSweep
from optuna.distributions import (
    BaseDistribution,
    CategoricalChoiceType,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

PARAMS_KEY = "hydra.sweeper.params"
_SUPPORTED_TAGS = frozenset({"log"})


class SearchSpaceError(ValueError):
    """A search-space expression that cannot be turned into a distribution."""


@dataclass(frozen=True)
class SweptParam:
    """One searched parameter: the Optuna name (the config key) and how to write its override."""

    name: str
    key_element: str  # the override's key with its prefix, e.g. "+model.dropout" or "db@backup"
    distribution: BaseDistribution


@dataclass
class SearchSpace:
    params: dict[str, SweptParam] = field(default_factory=dict)
    fixed_overrides: list[str] = field(default_factory=list)

    @property
    def distributions(self) -> dict[str, BaseDistribution]:
        return {name: param.distribution for name, param in self.params.items()}


def build_search_space(
    params: Mapping[str, Any] | None, arguments: Sequence[str], parser: OverridesParser
) -> SearchSpace:
    """Parse the configured params, then the command-line overrides (which win for the same key).

    Raises :class:`SearchSpaceError` naming the offending key for any bad expression.
    """
    by_key: dict[str, Override] = {}
    for key, expression in (params or {}).items():
        source = f"{PARAMS_KEY}.{key}"
        by_key[_plain_key(key)] = _parse_one(f"{key}={_expression_text(expression)}", source, parser)
    for argument in arguments:
        override = _parse_one(argument, f"command-line override '{argument}'", parser)
        by_key[_plain_key(override.get_key_element())] = override

    space = SearchSpace()
    for name, override in by_key.items():
        if override.is_sweep_override():
            source = f"{PARAMS_KEY}.{name}"
            space.params[name] = SweptParam(
                name=name,
                key_element=override.get_key_element(),
                distribution=distribution_from_override(override, source),
            )
        else:
            space.fixed_overrides.append(override.input_line or "")
    return space


def distribution_from_override(override: Override, source: str) -> BaseDistribution:
    """Map one parsed sweep override to an Optuna distribution; ``source`` names it in errors."""
    sweep = override.value()
    tags = set(getattr(sweep, "tags", set()) or set())
    unknown_tags = tags - _SUPPORTED_TAGS
    if unknown_tags:
        raise SearchSpaceError(
            f"{source}: unsupported tag(s) {sorted(unknown_tags)}; only tag(log, ...) is understood"
        )
    log = "log" in tags
    if isinstance(sweep, ChoiceSweep):
        return _categorical(sweep, log, source)
    if isinstance(sweep, RangeSweep):
        return _from_range(override, sweep, log, source)
    if isinstance(sweep, IntervalSweep):
        return _from_interval(sweep, log, source)
    raise SearchSpaceError(
        f"{source}: sweep type {type(sweep).__name__} is not supported by the optuna sweeper"
    )


def format_override(key_element: str, value: Any) -> str:
    """Render ``key=value`` so that Hydra's parser reads back exactly ``value``."""
    return f"{key_element}={format_value(value)}"


def format_value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _reads_back_as(text, text):
        return text
    escaped = text.replace("\\", "\\\\").replace("'", "\\'")
    return f"'{escaped}'"


def _reads_back_as(text: str, expected: str) -> bool:
    try:
        parsed = OverridesParser.create().parse_override(f"k={text}")
    except Exception:
        return False
    return not parsed.is_sweep_override() and parsed.value() == expected and isinstance(parsed.value(), str)


def _expression_text(expression: Any) -> str:
    # YAML gives numbers/bools for plain values (``layers: 2``); render them as override text.
    return expression if isinstance(expression, str) else format_value(expression)


def _plain_key(key_element: str) -> str:
    return key_element.lstrip("+~")


def _parse_one(line: str, source: str, parser: OverridesParser) -> Override:
    try:
        return parser.parse_override(line)
    except Exception as error:  # Hydra raises OverrideParseException / HydraException
        raise SearchSpaceError(f"{source}: cannot parse '{line}': {error}") from error


def _categorical(sweep: ChoiceSweep, log: bool, source: str) -> CategoricalDistribution:
    if log:
        raise SearchSpaceError(f"{source}: tag(log, ...) does not apply to choice()")
    choices = list(sweep.list)
    for choice in choices:
        if not isinstance(choice, (str, int, float, bool)):
            raise SearchSpaceError(
                f"{source}: choice values must be strings, numbers or booleans, got {choice!r}"
            )
    if not choices:
        raise SearchSpaceError(f"{source}: choice() needs at least one value")
    typed: list[CategoricalChoiceType] = choices
    return CategoricalDistribution(typed)


def _from_range(override: Override, sweep: RangeSweep, log: bool, source: str) -> BaseDistribution:
    values = list(override.sweep_iterator())
    if not values:
        raise SearchSpaceError(f"{source}: range({sweep.start}, {sweep.stop}, step={sweep.step}) is empty")
    step = abs(sweep.step)
    low, high = min(values), max(values)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        if log and step != 1:
            raise SearchSpaceError(f"{source}: tag(log, range(...)) needs step 1, got {step}")
        return IntDistribution(int(low), int(high), log=log, step=1 if log else int(step))
    if log:
        raise SearchSpaceError(f"{source}: tag(log, ...) does not apply to a float range with a step")
    return FloatDistribution(float(low), float(high), step=float(step))


def _from_interval(sweep: IntervalSweep, log: bool, source: str) -> BaseDistribution:
    low, high = sweep.start, sweep.end
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or low > high:
        raise SearchSpaceError(f"{source}: interval({low}, {high}) needs finite bounds with low <= high")
    if log and low <= 0:
        raise SearchSpaceError(f"{source}: tag(log, interval({low}, {high})) needs a positive lower bound")
    # int(interval(a, b)) is Hydra's cast: both bounds come back as ints.
    if isinstance(low, int) and isinstance(high, int):
        return IntDistribution(low, high, log=log)
    return FloatDistribution(float(low), float(high), log=log)
