"""Time analyze_codebase cold (empty cache) and warm (second call) on two 2,000-file corpora.

    .venv/bin/python scripts/bench_analyze.py

1. `generated`: the 2,000 small files (Python, JS, Go, Rust) of tests/test_analyze_large.py.
2. `stdlib`: up to 2,000 .py files of this interpreter's standard library (real code; 3.11
   has 1,790 with its tests).
Figures are recorded in docs/tools.md.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from breakingwind.tools.registry import build_registry  # noqa: E402
from tests.conftest import make_settings  # noqa: E402
from tests.test_analyze_large import generate  # noqa: E402


def stdlib_copy(root: Path, count: int) -> None:
    source = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in source.rglob("*.py") if "site-packages" not in p.parts)[:count]
    for path in files:
        target = root / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def measure(name: str, make: object, runs: int = 3) -> None:
    cold, warm = [], []
    for _ in range(runs):
        tmp = Path(tempfile.mkdtemp())
        make(tmp / "project", 2000)  # type: ignore[operator]
        settings = make_settings(tmp, environ={"BREAKINGWIND_PROJECT_ROOT": str(tmp / "project")})
        registry = build_registry(settings)
        for series in (cold, warm):
            started = time.perf_counter()
            result = asyncio.run(registry.call("analyze_codebase", {}))
            series.append(time.perf_counter() - started)
        shutil.rmtree(tmp)
    size = sum(s.bytes for s in result.languages) / 1e6
    cold_runs = ", ".join(f"{x:.2f}" for x in cold)
    warm_runs = ", ".join(f"{x:.3f}" for x in warm)
    print(
        f"{name}: {result.files_total} files, {size:.1f} MB; "
        f"cold median {statistics.median(cold):.2f} s (runs {cold_runs}); "
        f"warm median {statistics.median(warm):.3f} s (runs {warm_runs})"
    )


if __name__ == "__main__":
    measure("generated", generate)
    measure("stdlib", stdlib_copy)
