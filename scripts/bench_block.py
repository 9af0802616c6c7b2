"""bench_block.py FILE NAME TABLE_FILE: put the table between the
<!-- NAME begin --> and <!-- NAME end --> markers of FILE (appended when
the markers are not there yet), leaving the rest of FILE as it is. The
benchmark scripts share BENCHMARKS.md this way."""
import os
import re
import sys

path, name, table = sys.argv[1], sys.argv[2], open(sys.argv[3]).read().strip()
text = open(path).read() if os.path.exists(path) else ""
begin, end = f"<!-- {name} begin -->", f"<!-- {name} end -->"
block = f"{begin}\n{table}\n{end}"
if begin in text:
    text = re.sub(re.escape(begin) + ".*" + re.escape(end), lambda m: block, text, flags=re.S)
else:
    text = text.rstrip() + "\n\n" + block + "\n"
open(path, "w").write(text)
