"""The results of the measurements and their rendering as docs/benchmarks.md."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Verdict(StrEnum):
    MET = "met"
    MISSED = "missed"
    PENDING = "pending"
    """The figure cannot be judged yet (e.g. the feature it measures does not exist yet)."""


@dataclass
class Result:
    """One measurement: its figures and, where the issue sets one, its target and verdict."""

    number: int
    title: str
    method: str
    figures: list[tuple[str, str]] = field(default_factory=list)
    target: str | None = None
    measured: str | None = None
    """The figure the target is judged on, as shown in the summary."""
    verdict: Verdict | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, name: str, value: str) -> None:
        self.figures.append((name, value))


def ms(value: float) -> str:
    return f"{value:.2f} ms"


def us(value: float) -> str:
    return f"{value:.0f} µs"


def render(
    results: Sequence[Result],
    machine: Sequence[tuple[str, str]],
    *,
    command: str,
    banner: str | None = None,
) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` (`python -m benchmarks`); do not edit by hand, rerun it.",
        "Loops are bounded in count and time; every server listens on loopback.",
        "",
    ]
    if banner:
        lines += [f"> **{banner}**", ""]
    judged = [result for result in results if result.target]
    if judged:
        lines += [
            "## Targets",
            "",
            "| # | Target | Measured | Verdict |",
            "| --- | --- | --- | --- |",
        ]
        for result in judged:
            verdict = result.verdict.value if result.verdict else "-"
            lines.append(
                f"| {result.number} | {result.target} | {result.measured or '-'} | **{verdict}** |"
            )
        lines.append("")
    lines += ["## Machine", "", "| | |", "| --- | --- |"]
    lines += [f"| {name} | {value} |" for name, value in machine]
    lines.append("")
    for result in results:
        lines += [f"## {result.number}. {result.title}", "", result.method, ""]
        if result.figures:
            lines += ["| Figure | Value |", "| --- | --- |"]
            lines += [f"| {name} | {value} |" for name, value in result.figures]
            lines.append("")
        if result.target:
            verdict = result.verdict.value if result.verdict else "-"
            lines += [f"Target: {result.target}: **{verdict}**.", ""]
        lines += [f"- {note}" for note in result.notes]
        if result.notes:
            lines.append("")
    return "\n".join(lines)
