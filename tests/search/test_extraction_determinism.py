"""Same evidence ⇒ the same traces, byte for byte, in any worker process (whatever its hash seed)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.corpus import require_corpus
from tests.servers import PROJECT_ROOT

WALK_DIGEST = """
import hashlib, json, sys
from search.extraction.walker import WalkOptions, walk_image
digest = hashlib.sha256()
with open(sys.argv[1], "rb") as image:
    for trace in walk_image(file_object=image, evidence_id="e", options=WalkOptions(file_name=sys.argv[2])):
        digest.update(json.dumps(trace.to_dict(), sort_keys=True, default=str).encode())
print(digest.hexdigest())
"""


@pytest.mark.corpus
@pytest.mark.parametrize("name", ["files/dfvfs/ext2.E01", "files/pytsk/tsk_volume_system.raw"])
def test_two_processes_with_different_hash_seeds_give_identical_traces(name):
    image = require_corpus(name)
    digests = set()
    for seed in ("1", "2", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "DJANGO_SETTINGS_MODULE": "custodia.settings.test"}
        result = subprocess.run(
            [sys.executable, "-c", WALK_DIGEST, str(image), image.name],
            cwd=PROJECT_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-2000:]
        digests.add(result.stdout.strip())
    assert len(digests) == 1
