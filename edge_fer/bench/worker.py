"""One benchmark row in a fresh process: ``python -m edge_fer.bench.worker JOB OUT LAUNCHED``.

``JOB`` holds the options and the row as JSON; the result (or ``{"error": ...}``) goes to
``OUT`` as JSON. ``LAUNCHED`` is ``time.monotonic()`` in the parent just before it started this
interpreter, so the cold start counts the interpreter's own start-up (Linux and macOS share
one monotonic clock between processes).
"""

import time

STARTED_MONOTONIC = time.monotonic()

import json  # noqa: E402
import sys  # noqa: E402


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m edge_fer.bench.worker JOB.json OUT.json LAUNCHED_MONOTONIC", file=sys.stderr)
        return 2
    job_path, out_path, launched = argv
    from edge_fer.bench.harness import BenchOptions, RowConfig, measure_row
    from edge_fer.errors import EdgeFerError

    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    try:
        options = BenchOptions.from_dict(job["options"])
        result, code = measure_row(options, RowConfig(**job["row"]), float(launched), STARTED_MONOTONIC), 0
    except EdgeFerError as exc:
        result, code = {"error": str(exc), "error_type": type(exc).__name__}, 2
    from edge_fer.bench.report import write_json_atomic

    write_json_atomic(out_path, result)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
