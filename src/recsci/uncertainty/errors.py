"""Errors of the decision rules and their artifact: each message says what is wrong and what to do."""

from __future__ import annotations

from recsci.core.errors import RecsciError


class DecisionRuleError(RecsciError, ValueError):
    """Bad input to a decision rule (empty, NaN, mismatched lengths, no positives, ...)."""


class EmptyBucketError(DecisionRuleError):
    """An uncertainty bucket holds no fit examples, so it has no threshold to learn."""


class NoPositivesError(DecisionRuleError):
    """The fit labels contain no positive: recall is undefined and no threshold can be chosen."""


class PrecisionBoundUnreachableError(DecisionRuleError):
    """No threshold choice reaches the precision bound on the fit data (never a silent threshold)."""

    def __init__(self, bound: float, best_precision: float, rule: str) -> None:
        self.bound, self.best_precision, self.rule = bound, best_precision, rule
        super().__init__(
            f"{rule}: precision bound {bound:g} is unreachable on the fit data: the best precision any "
            f"threshold reaches is {best_precision:.4f}. Lower precision_bound, or use a better scorer."
        )


class RuleArtifactError(RecsciError, ValueError):
    """A decision-rule JSON file is missing, corrupt or not a rule; the message names the file."""
