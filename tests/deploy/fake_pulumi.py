"""A stand-in `pulumi` CLI for running `python -m deploy up` end to end through the real
Automation API: it answers the commands the SDK runs (version, stack select, config, stack
export, preview with `--event-log`, up) from the files in $FAKE_PULUMI_DIR, and appends every
command line to `calls.jsonl` there.

Files: `config.json` ({key: value}, rewritten by `config set|rm`), `state.json` (what `stack
export` prints), `preview.jsonl` (engine events written to the event log), `up.txt` (what a
failing `up` prints), `up_modes` (one word a line, one line per `up`, the last repeating: `fail`
prints up.txt and exits 255; `hang` waits for SIGINT, as the real CLI cancels an update on
Ctrl-C).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

FAIL_CODE = 255


def main(argv: list[str]) -> int:
    home = Path(os.environ["FAKE_PULUMI_DIR"])
    with (home / "calls.jsonl").open("a") as calls:
        calls.write(json.dumps(argv) + "\n")
    args = [arg for arg in argv if arg != "--non-interactive"]
    config_file = home / "config.json"
    if args[:1] == ["version"]:
        print("v3.200.0")
    elif args[:2] == ["config", "set"]:
        config = json.loads(config_file.read_text())
        config[args[2]] = args[args.index("--") + 1]
        config_file.write_text(json.dumps(config))
    elif args[:2] == ["config", "rm"]:
        config = json.loads(config_file.read_text())
        config.pop(args[2], None)
        config_file.write_text(json.dumps(config))
    elif args[:1] == ["config"]:
        config = json.loads(config_file.read_text())
        print(json.dumps({key: {"value": v, "secret": False} for key, v in config.items()}))
    elif args[:2] == ["stack", "export"]:
        print((home / "state.json").read_text())
    elif args[:1] == ["preview"]:
        print("Previewing update (oracle):")
        log = Path(args[args.index("--event-log") + 1])
        log.write_text((home / "preview.jsonl").read_text())
    elif args[:1] == ["up"]:
        return up(home)
    return 0


def up(home: Path) -> int:
    print("Updating (oracle):", flush=True)
    modes = (home / "up_modes").read_text().split()
    if len(modes) > 1:
        (home / "up_modes").write_text("\n".join(modes[1:]))
    if modes[0] == "hang":
        try:
            time.sleep(120)
        except KeyboardInterrupt:
            print("error: update canceled", file=sys.stderr)
        return FAIL_CODE
    print((home / "up.txt").read_text())
    return FAIL_CODE


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
