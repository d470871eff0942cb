"""The in-process engine and the offline dry run.

The Pulumi CLI runs the policy pack as a script from its own directory, which makes its
policies package top-level (`ai_swarm_policies`); the pack's directory goes on `sys.path` here,
so that the dry run and the tests import it under that same name: one package, not two.
"""

import sys
from pathlib import Path
from typing import Final

POLICY_PACK_DIR: Final = Path(__file__).resolve().parent.parent / "policies"
if str(POLICY_PACK_DIR) not in sys.path:
    sys.path.append(str(POLICY_PACK_DIR))
