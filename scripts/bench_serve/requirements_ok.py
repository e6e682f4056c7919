"""Exit 0 when every pinned package of a requirements file is installed at its version.

usage: requirements_ok.py REQUIREMENTS   (lines `name==version`, `#` comments)
"""
import sys
from importlib.metadata import version
for line in open(sys.argv[1]):
    line = line.split("#")[0].strip()
    if line:
        name, want = line.split("==")
        assert version(name) == want, name
