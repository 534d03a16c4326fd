"""Render N complete invoices of benchmarks/documents.py in one process, for a load-independent count
of instructions per invoice under valgrind (the machine is shared: CPU and wall figures swing).

The worker's warm-up (``documents._init``: WeasyPrint's import, stylesheets, fonts, a first render
of each format) runs first; the N invoices then run inside ``itertools.starmap`` (nothing in the
documents code uses it), so callgrind can collect only there. The tree whose code renders is the
one on PYTHONPATH, so two trees (main and a worktree) compare on the same invoices:

    PYTHONPATH=<tree> valgrind --tool=callgrind --collect-atstart=no --toggle-collect=starmap_next \\
        --callgrind-out-file=/tmp/cg.out python benchmarks/documents_instructions.py 8
    grep summary /tmp/cg.out        # instructions of the N invoices; / N = per invoice

The invoices cycle through the benchmark's four cases (b2c, b2b, b2c_en, public), so N a multiple
of 4 weighs them as the benchmark does. It prints the sha256 of every XML (the e-invoice must stay
byte-identical) and the total PDF bytes.
Usage: python benchmarks/documents_instructions.py [N] [--sessions 20]
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from itertools import starmap
from pathlib import Path

sys.path.append(str(Path(__file__).resolve().parents[1]))  # after PYTHONPATH: the tree rendered is PYTHONPATH's

from benchmarks.documents import PDF, XML, _document, _init
from runtime.documents import render


def _one(i: int, sessions: int) -> tuple[bytes, bytes]:
    doc = _document(i, sessions)
    return render(doc, XML), render(doc, PDF)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count", type=int, nargs="?", default=8)
    parser.add_argument("--sessions", type=int, default=20)
    args = parser.parse_args()
    _init(args.sessions)
    out = list(starmap(_one, [(i, args.sessions) for i in range(args.count)]))
    xml = hashlib.sha256(b"".join(x for x, _ in out)).hexdigest()[:16]
    print(f"{args.count} invoices: XML sha256 {xml}, PDF {sum(len(p) for _, p in out)} bytes")


if __name__ == "__main__":
    main()
