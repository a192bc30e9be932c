"""Turn a test run's report (JUnit XML, `go test -json`, libtest or unittest text) into counts."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

_MAX_REPORT_BYTES = 50 * 1024 * 1024
_MAX_FAILURES = 50
_MESSAGE_CHARS = 2000


class TestFailure(BaseModel):
    __test__ = False  # not a pytest test class

    name: str
    kind: str = Field(description="failure (an assertion) or error (a crash in the test).")
    message: str


@dataclass
class Counts:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[TestFailure] = field(default_factory=list)

    def add_failure(self, name: str, kind: str, message: str) -> None:
        if kind == "error":
            self.errors += 1
        else:
            self.failed += 1
        if len(self.failures) < _MAX_FAILURES:
            failure = TestFailure(name=name, kind=kind, message=message[:_MESSAGE_CHARS])
            self.failures.append(failure)


def from_junit_xml(path: Path) -> Counts | None:
    """Counts from a JUnit XML report, or None when it is missing or unreadable."""
    try:
        if path.stat().st_size > _MAX_REPORT_BYTES:
            return None
        root = ElementTree.parse(path).getroot()
    except (OSError, ElementTree.ParseError):
        return None
    counts = Counts()
    for case in root.iter("testcase"):
        name = "::".join(filter(None, [case.get("classname"), case.get("name")]))
        problem = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if problem is None:
            counts.passed += 1
        elif problem.tag == "skipped":
            counts.skipped += 1
        else:
            message = problem.get("message") or (problem.text or "").strip()
            counts.add_failure(name, problem.tag, message)
    return counts


def from_go_json(output: str) -> Counts | None:
    """Counts from `go test -json` events (one JSON object a line), per test."""
    counts = Counts()
    logs: dict[str, list[str]] = {}
    seen = False
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue
        seen = True
        test = event.get("Test")
        if not test:
            continue
        name = f"{event.get('Package', '')}.{test}"
        action = event.get("Action")
        if action == "output":
            logs.setdefault(name, []).append(event.get("Output", ""))
        elif action == "pass":
            counts.passed += 1
        elif action == "skip":
            counts.skipped += 1
        elif action == "fail":
            counts.add_failure(name, "failure", "".join(logs.get(name, [])[-20:]))
    return counts if seen else None


_LIBTEST_RESULT = re.compile(r"test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored", re.M)
_LIBTEST_FAILED = re.compile(r"^test (\S+) \.\.\. FAILED$", re.M)


def from_libtest(output: str) -> Counts | None:
    """Counts from Rust's libtest summary lines (summed over every test binary)."""
    results = _LIBTEST_RESULT.findall(output)
    if not results:
        return None
    counts = Counts()
    for passed, _, ignored in results:
        counts.passed += int(passed)
        counts.skipped += int(ignored)
    for name in _LIBTEST_FAILED.findall(output):
        block = re.search(rf"---- {re.escape(name)} stdout ----\n(.*?)(?:\n\n|\Z)", output, re.S)
        counts.add_failure(name, "failure", block.group(1) if block else "")
    return counts


_UNITTEST_LINE = re.compile(
    r"^(\w+) \(([\w.]+)\)(?:\n.*?)? \.\.\. (ok|FAIL|ERROR|skipped.*)$", re.M
)


def from_unittest(output: str) -> Counts | None:
    """Counts from `python -m unittest -v` output."""
    if not re.search(r"^Ran \d+ tests? in", output, re.M):
        return None
    counts = Counts()
    for name, where, outcome in _UNITTEST_LINE.findall(output):
        if outcome == "ok":
            counts.passed += 1
        elif outcome.startswith("skipped"):
            counts.skipped += 1
        else:
            full = f"{where}.{name}"
            kind = "error" if outcome == "ERROR" else "failure"
            header = rf"^{outcome}: {re.escape(name)} \({re.escape(where)}\)\n-+\n"
            detail = re.search(header + r"(.*?)(?=^={10,}|^-{10,}\nRan )", output, re.M | re.S)
            counts.add_failure(full, kind, detail.group(1).strip() if detail else outcome)
    return counts


_SUMMARIES = (
    # jest / vitest: "Tests:       1 failed, 2 skipped, 3 passed, 6 total"
    re.compile(r"Tests?:?\s+(?P<body>(?:\d+ \w+,?\s*)+)", re.I),
    # node --test: its summary block ("# tests 1", "# suites 0", "# pass 0", "# fail 1",
    # "# cancelled 0", "# skipped 0", "# todo 0", "# duration_ms 109.4") matched whole
    re.compile(
        r"(?P<body>(?:^[#ℹ] (?:tests|suites|pass|fail|cancelled|skipped|todo|duration_ms)"
        r" [\d.]+\n?)+)",
        re.M,
    ),
    # mocha: "3 passing", "1 failing", "2 pending"
    re.compile(r"(?P<body>(?:^\s*\d+ (?:passing|failing|pending).*\n?)+)", re.M),
)
_WORDS = {"passed": "passed", "pass": "passed", "passing": "passed", "failed": "failed",
          "fail": "failed", "failing": "failed", "cancelled": "failed", "skipped": "skipped",
          "pending": "skipped",
          "todo": "skipped"}  # fmt: skip


def from_runner_output(output: str) -> Counts | None:
    """Counts from the summary line of common JavaScript runners (jest, vitest, node, mocha)."""
    for pattern in _SUMMARIES:
        matches = list(pattern.finditer(output))
        if not matches:
            continue
        counts = Counts()
        body = matches[-1].group("body")
        for number, word in re.findall(r"(\d+) (\w+)", body) + [
            (n, w) for w, n in re.findall(r"[#ℹ] (\w+) (\d+)", body)
        ]:
            bucket = _WORDS.get(word.lower())
            if bucket:
                setattr(counts, bucket, getattr(counts, bucket) + int(number))
        if counts.passed or counts.failed or counts.skipped:
            return counts
    return None


def coverage_percent(path: Path) -> float | None:
    """Total line coverage from a `coverage json` report."""
    try:
        totals = json.loads(path.read_text())["totals"]
        return round(float(totals["percent_covered"]), 2)
    except (OSError, ValueError, KeyError, TypeError):
        return None
