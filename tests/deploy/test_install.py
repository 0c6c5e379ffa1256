"""`anomalyd install-service` and scripts/install-service.sh: the dry run changes nothing and
names every step; a run into a temporary root writes the files (config with commented
defaults that parse back to the built-in defaults, the unit, the enable symlink)."""
from __future__ import annotations

import os
import re
import subprocess

import yaml

from .helpers import CLI, REPO, UNIT

CONFIG = "etc/anomalyd/config.yaml"
INSTALLED_UNIT = "etc/systemd/system/anomalyd.service"
WANTS = "etc/systemd/system/multi-user.target.wants/anomalyd.service"


def install(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "install-service", *args], capture_output=True, text=True, timeout=120)


def files_under(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def test_dry_run_into_a_root_changes_nothing(tmp_path):
    result = install("--dry-run", "--root", str(tmp_path))
    assert result.returncode == 0, result.stderr
    assert files_under(tmp_path) == []
    out = result.stdout
    for expected in ("useradd --system", "-m venv", "pip install", f"{tmp_path}/{CONFIG}",
                     f"{tmp_path}/{INSTALLED_UNIT}", "daemon-reload", f"systemctl --root={tmp_path} enable"):
        assert expected in out, f"{expected!r} missing from the dry run:\n{out}"
    assert out.count("would ") >= 4, out


def test_dry_run_on_this_machine_plans_the_real_paths():
    result = install("--dry-run", "--now")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "/etc/anomalyd/config.yaml" in out and "/etc/systemd/system/anomalyd.service" in out
    assert "/opt/anomalyd/venv" in out
    assert "systemctl enable anomalyd.service" in out
    assert "restart anomalyd.service" in out  # --now


def test_install_into_a_root(tmp_path):
    result = install("--root", str(tmp_path), "--skip-venv")
    assert result.returncode == 0, result.stdout + result.stderr
    assert {CONFIG, INSTALLED_UNIT, WANTS} <= set(files_under(tmp_path))
    assert (tmp_path / INSTALLED_UNIT).read_text() == UNIT.read_text()
    assert os.readlink(tmp_path / WANTS) == "/etc/systemd/system/anomalyd.service"
    assert (tmp_path / CONFIG).stat().st_mode & 0o777 == 0o640  # it may hold a password


def test_config_holds_every_default_commented_out(tmp_path):
    from anomalyd.daemon.config import Config, parse, schema_rows

    assert install("--root", str(tmp_path), "--skip-venv").returncode == 0
    text = (tmp_path / CONFIG).read_text()
    assert parse(text) == Config()  # as written: all comments
    body = [line for line in text.splitlines() if re.match(r"# ?\s*[a-z_]+:", line)]
    uncommented = "\n".join(line[2:] for line in body)
    assert parse(uncommented) == Config()  # every line uncommented: exactly the defaults
    keys = {key for key, _type, _default in schema_rows()}
    document = yaml.safe_load(uncommented)
    written = {f"{s}.{k}" for s, v in document.items() if isinstance(v, dict) for k in v}
    written |= {s for s, v in document.items() if not isinstance(v, dict)}
    assert written == keys


def test_rerun_keeps_the_config_and_renders_options(tmp_path):
    assert install("--root", str(tmp_path), "--skip-venv").returncode == 0
    (tmp_path / CONFIG).write_text("scoring:\n  threshold: 0.7\n")
    result = install("--root", str(tmp_path), "--skip-venv", "--venv", "/srv/anomalyd/env", "--user", "sensors")
    assert result.returncode == 0, result.stderr
    assert "exists, left as it is" in result.stdout
    assert (tmp_path / CONFIG).read_text() == "scoring:\n  threshold: 0.7\n"
    unit = (tmp_path / INSTALLED_UNIT).read_text()
    assert "ExecStart=/srv/anomalyd/env/bin/anomalyd run --config /etc/anomalyd/config.yaml" in unit
    assert "\nUser=sensors\n" in unit and "\nGroup=sensors\n" in unit
    again = install("--root", str(tmp_path), "--skip-venv", "--venv", "/srv/anomalyd/env", "--user", "sensors")
    assert "up to date" in again.stdout


def test_refuses_to_touch_the_system_unless_root(tmp_path):
    if os.geteuid() == 0:
        # As root, check the refusal path with a missing unit file instead (nothing is touched).
        result = install("--unit-file", str(tmp_path / "missing.service"))
        assert result.returncode == 2 and "not found" in result.stderr
    else:
        result = install()
        assert result.returncode == 2 and "run as root" in result.stderr


def test_shell_script_dry_run(tmp_path):
    result = subprocess.run(["bash", str(REPO / "scripts" / "install-service.sh"), "--dry-run", "--root", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert files_under(tmp_path) == []
    assert "pip install" in result.stdout and f"{tmp_path}/{INSTALLED_UNIT}" in result.stdout


def test_a_wheel_carries_the_unit_and_install_service_finds_it_there(tmp_path, monkeypatch):
    """Outside a source checkout (an installed wheel), the unit comes from the environment's
    share/anomalyd/systemd, where the wheel's data files put it."""
    import sys
    import zipfile

    from anomalyd.daemon import install_command

    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(tmp_path / "wheel"), str(REPO)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "wheel").glob("anomalyd-*.whl")
    inside = f"{wheel.name.split('-py3')[0]}.data/data/{install_command.PACKAGED_UNIT}"
    with zipfile.ZipFile(wheel) as archive:
        assert archive.read(inside).decode() == UNIT.read_text()

    assert install_command.shipped_unit(str(tmp_path / "env")) == UNIT  # a checkout uses its own
    prefix = tmp_path / "env"
    (prefix / install_command.PACKAGED_UNIT).parent.mkdir(parents=True)
    (prefix / install_command.PACKAGED_UNIT).write_text(UNIT.read_text())
    monkeypatch.setattr(install_command, "SOURCE_TREE", tmp_path / "not-a-checkout")
    assert install_command.shipped_unit(str(prefix)) == prefix / install_command.PACKAGED_UNIT
