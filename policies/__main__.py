"""What `pulumi preview --policy-pack policies` runs: serve the ai-swarm pack to the engine.

The CLI runs this file as a script with this directory first on `sys.path`, so the policies
module is imported as a top-level module. `PolicyPack` serves gRPC and never returns: nothing
else may construct it, which is why the policies live in `ai_swarm_policies`.
"""

from pulumi_policy import PolicyPack

from ai_swarm_policies import PACK_NAME, build_policies

PolicyPack(name=PACK_NAME, policies=build_policies())
