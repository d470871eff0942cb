"""The ai-swarm CrossGuard policies: Oracle's Always Free budget and the security baseline.

`policies/__main__.py` alone builds the `PolicyPack` (it serves gRPC and never returns); the
tests and the offline dry run import this package and drive the same policies through
pulumi-policy's analyzer. The pack judges what the program registers and imports nothing from
`components/`, so a sizing mistake there cannot hide from it.

- `contract`: the type tokens, label, tag and shapes the program and the pack agree on.
- `reading`: reading inputs; an unknown or ill-typed value is `UndecidableError`.
- `measure`: the budget figures (hosts, A1, block storage, backups), for the policies and the
  dry run alike.
- `allowance`, `host_budget`, `baseline`, `platforms`, `ingress`, `hardening`, `digests`,
  `object_storage`: the policies, each beside its config schema.

Preview safety: during `pulumi preview` the outputs of resources not yet created are unknown, and
the analyzer turns a policy that reads one into an advisory "can't run policy during preview".
Every value is read through `reading`, which reads only the property asked for (never a whole
object) and turns an unknown into a violation of the policy that needed it: a mandatory budget
never silently degrades to advice. (One deliberate exception: pinned-images skips a container
whose image is an unknown id, since the RemoteImage it comes from is checked itself.)
"""

from .pack import PACK_NAME, build_policies

__all__ = ["PACK_NAME", "build_policies"]
