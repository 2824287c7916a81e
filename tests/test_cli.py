"""The command line an operator uses: `check` lists every problem with file:line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from sobat_matrix.cli import EXIT_CONFIG, main

ROOT = Path(__file__).resolve().parent.parent


def _config(tmp_path: Path, policy: Path) -> Path:
    text = (ROOT / "config.yaml.example").read_text(encoding="utf-8")
    text = text.replace('password: "CHANGE_ME"', 'password: "s3cret-for-tests"')
    text = text.replace('policy: "policies/sukabumi.yaml"', f'policy: "{policy}"')
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_check_accepts_the_shipped_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "sukabumi.yaml"
    shutil.copy(ROOT / "policies" / "sukabumi.yaml", policy)

    assert main(["check", "--config", str(_config(tmp_path, policy))]) == 0
    assert "4 counsellors, 4 categories" in capsys.readouterr().out


def test_check_lists_every_policy_problem_with_its_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (ROOT / "policies" / "sukabumi.yaml").read_text(encoding="utf-8")
    text = text.replace("timeout: 10m ", 'timeout: "sepuluh menit" ', 1)
    text = text.replace('"@siti:sukabumi.test"]', '"@siapa:sukabumi.test"]', 1)
    policy = tmp_path / "broken.yaml"
    policy.write_text(text, encoding="utf-8")
    lines = text.splitlines()
    timeout_line = 1 + next(i for i, x in enumerate(lines) if "sepuluh menit" in x)
    unknown_line = 1 + next(i for i, x in enumerate(lines) if "@siapa" in x)

    code = main(["check", "--config", str(_config(tmp_path, policy))])

    err = capsys.readouterr().err.splitlines()
    assert code == EXIT_CONFIG
    assert err == [
        f"{policy}:{timeout_line}: categories.keluarga.route[0].timeout: expected a "
        'duration like "10m" or "1h30m", got "sepuluh menit"',
        f"{policy}:{unknown_line}: categories.ekonomi.route[1].counsellors[0]: "
        '"@siapa:sukabumi.test" is not in counsellors',
    ]


def test_run_refuses_an_invalid_policy_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    policy = tmp_path / "tabs.yaml"
    policy.write_text("counsellors:\n\t- id: x\n", encoding="utf-8")

    assert main(["run", "--config", str(_config(tmp_path, policy))]) == EXIT_CONFIG
    assert f"{policy}:2:" in capsys.readouterr().err


def test_check_takes_a_policy_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sample = ROOT / "policies" / "sukabumi.yaml"
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        sample.read_text(encoding="utf-8").replace("timeout: 10m ", "timeout: 10 ", 1),
        encoding="utf-8",
    )

    assert main(["check", "--policy", str(sample)]) == 0
    assert capsys.readouterr().out == f"{sample}: OK (4 counsellors, 4 categories)\n"
    assert main(["check", "--policy", str(broken)]) == EXIT_CONFIG
    (problem,) = capsys.readouterr().err.splitlines()
    assert problem.startswith(f"{broken}:") and "timeout" in problem


def test_check_says_when_run_would_miss_the_password(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SOBAT_BOT_PASSWORD", raising=False)
    policy = tmp_path / "sukabumi.yaml"
    shutil.copy(ROOT / "policies" / "sukabumi.yaml", policy)
    config = _config(tmp_path, policy)
    config.write_text(
        config.read_text(encoding="utf-8").replace('password: "s3cret-for-tests"', ""),
        encoding="utf-8",
    )

    assert main(["check", "--config", str(config)]) == 0
    assert "no bot password here" in capsys.readouterr().err
    assert main(["run", "--config", str(config)]) == EXIT_CONFIG
