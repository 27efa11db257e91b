"""vsarvo's benchmarks: model cost, aggregation memory, throughput per backend, the BasicVSR++ peer.

Run from a source checkout (this folder is not installed): ``python -m bench`` runs the suite,
``python -m bench.<name>`` one benchmark. Every benchmark prints a table to stdout and writes
``bench/results/<name>.json``; ``python -m bench.report`` turns those files into ``TABLE.md``.
"""
