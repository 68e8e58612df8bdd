"""Scan one file with fickling's documented Python API and print the verdict as JSON.

Run by bench/.venv-peers/bin/python, one process per file. fickling's CLI reads a file as
a stack of raw pickles only, so a PyTorch zip is a parse error there; its API has
`scan_zip_archive` (pickle members of a zip) and `scan_file` (a raw pickle stream), which
is what a user of fickling the library would call. graceful=True makes parse errors part
of the verdict (fickling rates them suspicious) rather than exceptions.
"""

from __future__ import annotations

import json
import sys
import zipfile

import fickling


def main() -> int:
    path = sys.argv[1]
    if zipfile.is_zipfile(path):
        results = list(fickling.scan_zip_archive(path, graceful=True).values())
        if not results:
            # No .pkl/.pickle/.bin member: fickling has nothing to say about this zip.
            print(json.dumps({"safe": True, "errors": [], "scanned": 0}))
            return 0
    else:
        results = [fickling.scan_file(path, graceful=True)]
    safe = all(result.is_safe for result in results)
    errors = [error for result in results for error in result.errors]
    print(json.dumps({"safe": safe, "errors": errors, "scanned": len(results)}))
    return 0 if safe else 1


if __name__ == "__main__":
    sys.exit(main())
