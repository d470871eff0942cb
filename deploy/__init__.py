"""`python -m deploy`: the operator's commands for the stack (up, status, idle-check, images).

Every side effect (the Pulumi Automation API, SSH, the OCI SDK, the clock, sleeping and random
numbers) sits behind a small Protocol in `deploy.ports`, so the tests drive the real logic with
fakes; the real adapters live in `deploy.adapters` and import Pulumi's and Oracle's SDKs lazily,
so `--help` works without either CLI or credentials. The image check's registry sits behind
`deploy.registry.Registry` (python-dxf in `DxfRegistry`).
"""
