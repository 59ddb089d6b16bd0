"""Scale tests: real API and worker processes on PostgreSQL + Redis (helpers in cluster.py beside this file)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
