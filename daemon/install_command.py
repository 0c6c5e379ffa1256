"""``anomalyd install-service``: install the daemon as a systemd service.

Steps, each skipped when already done (so the command can be re-run after an upgrade):

1. a system user and group ``anomalyd`` (no login, no home of its own);
2. a virtualenv (default /opt/anomalyd/venv) with this project pip-installed into it;
3. /etc/anomalyd/config.yaml with every key's default, commented out (never overwritten);
4. the unit file at /etc/systemd/system/anomalyd.service (replaced: it belongs to us; site
   changes go in a drop-in made with ``systemctl edit anomalyd``);
5. ``systemctl daemon-reload`` and ``systemctl enable`` (``--now``: and start it).

``--dry-run`` prints the plan and changes nothing. ``--root DIR`` writes every file under DIR
instead of / (a staging tree or a test): steps that would touch the running system (user
creation, daemon-reload, start) are skipped, and enabling uses ``systemctl --root``, which only
creates the symlink.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

UNIT_NAME = "anomalyd.service"
DEFAULT_VENV = "/opt/anomalyd/venv"
DEFAULT_CONFIG = "/etc/anomalyd/config.yaml"
DEFAULT_STATE = "/var/lib/anomalyd"
UNIT_DIR = "/etc/systemd/system"
# A source checkout holds systemd/ beside daemon/; editable installs run from there.
SOURCE_TREE = Path(__file__).resolve().parent.parent
# Where a wheel puts the unit (setup.cfg's data_files), relative to the environment's prefix.
PACKAGED_UNIT = Path("share") / "anomalyd" / "systemd" / UNIT_NAME


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dry-run", action="store_true", help="print what would be done and change nothing")
    parser.add_argument("--root", default="/", metavar="DIR",
                        help="install the files under DIR instead of / (no user, no daemon-reload, no start)")
    parser.add_argument("--now", action="store_true", help="also start (or restart) the service")
    parser.add_argument("--user", default="anomalyd", help="system user and group to run as (default %(default)s)")
    parser.add_argument("--venv", default=DEFAULT_VENV, help="virtualenv to create (default %(default)s)")
    parser.add_argument("--python", default="python3", help="interpreter for the virtualenv (default %(default)s)")
    parser.add_argument("--source", metavar="PATH_OR_REQUIREMENT",
                        help="what to pip-install (default: this source checkout if there is one, "
                             "else anomalyd==<running version>)")
    parser.add_argument("--skip-venv", action="store_true",
                        help="leave the virtualenv alone (it is managed some other way)")
    parser.add_argument("--unit-file", metavar="FILE",
                        help="unit to install (default: systemd/anomalyd.service of this source checkout, else the one installed with the package)")


def run(args: argparse.Namespace) -> int:
    try:
        plan = Plan.build(args)
    except InstallError as exc:
        print(f"anomalyd install-service: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run and plan.live and os.geteuid() != 0:
        print("anomalyd install-service: run as root (or use --dry-run, or --root DIR)", file=sys.stderr)
        return 2
    return plan.execute(dry_run=args.dry_run)


class InstallError(Exception):
    pass


@dataclass
class Step:
    summary: str  # what the step does, in words (printed with --dry-run and when run)
    action: Callable[[], None] | None = None  # None: nothing to do (already done or skipped)
    note: str = ""  # why there is nothing to do


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    live: bool = True  # installing into the running system (root is /)

    @classmethod
    def build(cls, args: argparse.Namespace) -> "Plan":
        root = Path(args.root).resolve()
        live = root == Path("/")
        unit_source = Path(args.unit_file) if args.unit_file else shipped_unit()
        if not unit_source.is_file():
            raise InstallError(f"unit file {unit_source} not found: pass --unit-file")
        unit_text = render_unit(unit_source.read_text(), args.venv, args.user)
        plan = cls(live=live)
        plan.steps.append(_user_step(args.user, live))
        plan.steps.extend(_venv_steps(root, args))
        plan.steps.append(_config_step(root, args.user, live))
        plan.steps.append(_unit_step(root, unit_text))
        plan.steps.extend(_systemctl_steps(root, live, args.now))
        return plan

    def execute(self, dry_run: bool) -> int:
        for number, step in enumerate(self.steps, 1):
            if step.action is None:
                print(f"[{number}] {step.summary}: {step.note}")
                continue
            print(f"[{number}] {'would ' if dry_run else ''}{step.summary}", flush=True)
            if dry_run:
                continue
            try:
                step.action()
            except (OSError, subprocess.CalledProcessError) as exc:
                print(f"anomalyd install-service: step {number} failed: {exc}", file=sys.stderr)
                return 1
        if not dry_run:
            print("done. Status: systemctl status anomalyd; logs: journalctl -u anomalyd; "
                  "metrics: curl -s http://127.0.0.1:9808/metrics")
        return 0


def shipped_unit(prefix: str = sys.prefix) -> Path:
    """The unit of this source checkout, else the one a wheel installed under ``prefix``."""
    checkout = SOURCE_TREE / "systemd" / UNIT_NAME
    return checkout if checkout.is_file() else Path(prefix) / PACKAGED_UNIT


def render_unit(text: str, venv: str, user: str) -> str:
    """The shipped unit with the virtualenv path and the user changed, if they differ."""
    text = text.replace(f"{DEFAULT_VENV}/bin/anomalyd", f"{venv.rstrip('/')}/bin/anomalyd")
    lines = []
    for line in text.splitlines():
        if line.startswith("User="):
            line = f"User={user}"
        elif line.startswith("Group="):
            line = f"Group={user}"
        lines.append(line)
    return "\n".join(lines) + "\n"


def _command(argv: list[str]) -> Callable[[], None]:
    return lambda: subprocess.run(argv, check=True)


def _under(root: Path, path: str) -> Path:
    return root / path.lstrip("/")


def _user_step(user: str, live: bool) -> Step:
    argv = ["useradd", "--system", "--user-group", "--home-dir", DEFAULT_STATE, "--no-create-home",
            "--shell", "/usr/sbin/nologin", "--comment", "anomalyd daemon", user]
    summary = f"create system user {user}: {shlex.join(argv)}"
    if not live:
        return Step(summary, note="skipped under --root (create it on the target machine)")
    if _user_exists(user):
        return Step(f"system user {user}", note="exists")
    return Step(summary, _command(argv))


def _user_exists(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
        return True
    except KeyError:
        return False


def _venv_steps(root: Path, args: argparse.Namespace) -> list[Step]:
    venv = _under(root, args.venv)
    if args.skip_venv:
        return [Step(f"virtualenv {venv}", note="skipped (--skip-venv)")]
    source = args.source or _default_source()
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--upgrade", source]
    steps = []
    if (venv / "bin" / "python").exists():
        steps.append(Step(f"virtualenv {venv}", note="exists"))
    else:
        argv = [args.python, "-m", "venv", str(venv)]
        steps.append(Step(f"create virtualenv: {shlex.join(argv)}", _command(argv)))
    steps.append(Step(f"install anomalyd into it: {shlex.join(pip)}", _command(pip)))
    return steps


def _default_source() -> str:
    if (SOURCE_TREE / "setup.cfg").is_file():
        return str(SOURCE_TREE)
    from anomalyd.daemon import __version__

    return f"anomalyd=={__version__}"


def _config_step(root: Path, user: str, live: bool) -> Step:
    path = _under(root, DEFAULT_CONFIG)
    if path.exists():
        return Step(f"configuration {path}", note="exists, left as it is")
    text = commented_defaults()

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, text, 0o640)
        if live:  # root:anomalyd 0640: the daemon reads it, nobody else (it may hold a password)
            shutil.chown(path, "root", user)

    return Step(f"write {path} (every key at its default, commented out; mode 0640)", write)


def _unit_step(root: Path, unit_text: str) -> Step:
    path = _under(root, f"{UNIT_DIR}/{UNIT_NAME}")
    if path.exists() and path.read_text() == unit_text:
        return Step(f"unit {path}", note="up to date")
    verb = "replace" if path.exists() else "write"

    def write() -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, unit_text, 0o644)

    return Step(f"{verb} {path}", write)


def _systemctl_steps(root: Path, live: bool, now: bool) -> list[Step]:
    if not live:
        enable = ["systemctl", f"--root={root}", "enable", UNIT_NAME]
        return [Step("systemctl daemon-reload", note="skipped under --root"),
                Step(f"enable: {shlex.join(enable)}", _command(enable)),
                *([Step("start", note="skipped under --root")] if now else [])]
    booted = Path("/run/systemd/system").is_dir()  # sd_booted(3)
    reload_argv = ["systemctl", "daemon-reload"]
    enable = ["systemctl", "enable", UNIT_NAME]
    steps = [Step(shlex.join(reload_argv), _command(reload_argv) if booted else None,
                  note="" if booted else "skipped: systemd is not running on this machine"),
             Step(f"enable: {shlex.join(enable)}", _command(enable))]
    if now:
        restart = ["systemctl", "restart", UNIT_NAME]  # restart: picks up a new version too
        steps.append(Step(f"start: {shlex.join(restart)}", _command(restart) if booted else None,
                          note="" if booted else "skipped: systemd is not running on this machine"))
    return steps


def _write_atomic(path: Path, text: str, mode: int) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with open(temporary, "w") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.chmod(temporary, mode)
    os.replace(temporary, path)


# -- the commented configuration ----------------------------------------------------------------

CONFIG_HEADER = """\
# anomalyd configuration (written by `anomalyd install-service`; it never overwrites this file).
#
# Every key is optional. Each line below shows a key at its built-in default, commented out:
# uncomment (keep the section line above it) and change what you need, then check the file and
# apply it:
#   /opt/anomalyd/venv/bin/anomalyd config check /etc/anomalyd/config.yaml
#   systemctl restart anomalyd    # or `systemctl reload anomalyd`: threshold and log level only
# Types and defaults of every key: `anomalyd config reference`.
#
# Under systemd, --state-dir /var/lib/anomalyd (in the unit) overrides state.directory.
# MQTT password: put it in a file readable by root and group anomalyd only (mode 0640) and set
# mqtt.password_file, or use the unit's LoadCredential= (see the unit file).
"""


def commented_defaults() -> str:
    """The whole configuration schema as YAML with every line commented out; uncommented, it
    parses to exactly the built-in defaults (tests/deploy/test_install.py checks that)."""
    import dataclasses

    import yaml

    from anomalyd.daemon.config import Config

    lines = [CONFIG_HEADER]
    defaults = Config()
    for section in dataclasses.fields(Config):
        value = getattr(defaults, section.name)
        if dataclasses.is_dataclass(value):
            lines.append(f"# {section.name}:")
            for item in dataclasses.fields(value):
                lines.append(f"#   {_yaml_line(yaml, item.name, getattr(value, item.name))}")
            lines.append("")
        else:
            lines.append(f"# {_yaml_line(yaml, section.name, value)}")
    return "\n".join(lines).rstrip() + "\n"


def _yaml_line(yaml, key: str, value) -> str:
    plain = list(value) if isinstance(value, tuple) else value
    text = yaml.safe_dump(plain, default_flow_style=True, width=1_000).strip()
    return f"{key}: {text.removesuffix('...').strip()}"  # a bare scalar document ends with '...'
