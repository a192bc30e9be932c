"""`breakingwind loadtest`: a bounded load run of mixed concurrent clients against a daemon.

N clients (`clients.py`) each loop for a fixed duration, picking streamed chats, completions, MCP
tool calls and workflows by a fixed mix with a seeded RNG (`http_requests.py`, `mcp_call.py`);
every request has a timeout. Meanwhile the daemon's RSS, threads and /metrics are sampled
(`sampler.py`). The report (`report.py`, rendered by `render.py`) gives requests by kind and
outcome, latency and time-to-first-token percentiles, tokens/s, back-pressure and server errors,
memory and threads after warm-up, and a verdict per criterion. `run.py` puts it together, with a
daemon of its own (`daemon.py`) on a temporary project (`project.py`) unless given a URL.
"""

from breakingwind.measure.loadtest.plan import LoadPlan
from breakingwind.measure.loadtest.render import render_text
from breakingwind.measure.loadtest.report import LoadReport
from breakingwind.measure.loadtest.run import run_loadtest

__all__ = ["LoadPlan", "LoadReport", "render_text", "run_loadtest"]
