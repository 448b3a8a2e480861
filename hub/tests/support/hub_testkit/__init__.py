"""What the hub tests need beyond the hub itself: a real S3 store (SeaweedFS) and crash injection.

Never installed: ``hub/tests/conftest.py`` and ``tests/conftest.py`` put ``hub/tests/support`` on
``sys.path``, and the subprocesses the tests start get it in ``PYTHONPATH``.
"""

from pathlib import Path

SUPPORT_DIR = Path(__file__).resolve().parent.parent
