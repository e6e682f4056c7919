"""Prints one results.jsonl line: wrk's JSON summary with the run's labels added.

usage: record_wrk.py WRK_JSON SERVER WORKERS CONNECTIONS LOAD1 MODE
"""
import json
import sys

d = json.loads(sys.argv[1])
d.update(server=sys.argv[2], workers=sys.argv[3], connections=int(sys.argv[4]),
         load1=float(sys.argv[5]), mode=sys.argv[6])
print(json.dumps(d))
