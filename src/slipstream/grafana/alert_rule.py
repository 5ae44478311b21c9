"""One alert rule as Prometheus reads it: a severity, a one-sentence summary, a description templated with the
alert's labels, and a ``runbook_url`` to its own section of RUNBOOK.md."""

from __future__ import annotations

from dataclasses import dataclass, field

from slipstream.grafana.values import GrafanaValues
from slipstream.grafana.yaml_text import Data

__all__ = ["Alert", "label"]


def label(name: str) -> str:
    """The alert template for one of its labels."""
    return f"{{{{ $labels.{name} }}}}"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    severity: str
    summary: str
    description: str
    duration: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self, values: GrafanaValues) -> dict[str, Data]:
        rule: dict[str, Data] = {"alert": self.name, "expr": self.expr}
        if self.duration:
            rule["for"] = self.duration
        rule["labels"] = {"severity": self.severity, **self.labels}
        rule["annotations"] = {
            "summary": self.summary,
            "description": self.description,
            "runbook_url": f"{values.runbook_url}#{self.name.lower()}",
        }
        return rule
