"""``reelpick.testing`` is a library module: importing it loads neither the simulator nor torch
nor the policies (a policy under test is passed in)."""

from __future__ import annotations

import subprocess
import sys


def test_importing_the_suites_stays_light():
    code = ("import sys, reelpick.testing; "
            "print(sorted(m for m in sys.modules if m.startswith(('reelpick.world', "
            "'reelpick.policies', 'torch')) or m == 'torch'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
