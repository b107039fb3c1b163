"""Run by tests/test_kimina.py under a Python that has kimina's own client (`kimina-client` from PyPI):
reads [url, api_key, snippets...] as JSON on stdin, checks the snippets through `KiminaClient.check`,
and prints, as its last line, the client's own analysis of each answer (its SnippetStatus) and the
error it recorded for it (the client prints its own notes before)."""

import json
import sys

from kimina_client import KiminaClient

url, key, *snippets = json.loads(sys.stdin.read())
try:
    answer = KiminaClient(api_url=url, api_key=key, n_retries=1).check(snippets, show_progress=False)
except Exception as exc:  # the client's own error for a refused request
    print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
else:
    print(json.dumps({"statuses": [r.analyze().status.value for r in answer.results], "errors": [r.error for r in answer.results],
                      "ids": [r.id for r in answer.results], "answered": [r.response is not None for r in answer.results]}))
