"""Adds the RSS samples of a soak (a TSV of second, rss_kb, processes) to the last result
line of a results.jsonl file: sample count, first, min, max and last RSS in MB.

usage: add_rss.py RSS_TSV RESULTS_JSONL
"""
import json, sys
rows = [l.split("\t") for l in open(sys.argv[1]).read().splitlines()[1:] if l]
kb = [int(r[1]) for r in rows]
lines = open(sys.argv[2]).read().splitlines()
d = json.loads(lines[-1])
d.update(rss_samples=len(kb), rss_first_mb=kb[0] / 1024, rss_min_mb=min(kb) / 1024,
         rss_max_mb=max(kb) / 1024, rss_last_mb=kb[-1] / 1024)
lines[-1] = json.dumps(d)
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
