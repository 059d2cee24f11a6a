"""`harness doctor --quick` on CPU: every row, and the measured figures are positive."""

import json

from click.testing import CliRunner

from harness.cli import main
from harness.env import ENVS
from harness.lab.doctor import LIBRARIES


def test_doctor_quick_has_every_row_and_positive_cpu_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-never-printed")
    out = tmp_path / "doctor.json"
    result = CliRunner().invoke(main, ["doctor", "--quick", "--device", "cpu", "--json",
                                       str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    checks = report["checks"]
    rows = [*LIBRARIES, "cuda", "g++ (AtCoder envs)", "sandbox", "anthropic key",
            "embedded model", "sampling", "LoRA training step", "sandbox round trip",
            *(f"verifier {name}" for name in ENVS)]
    assert list(checks) == rows
    for name in rows:
        assert name in result.stdout  # the table shows every row
    assert "sk-ant-never-printed" not in result.output + out.read_text()
    assert checks["anthropic key"]["data"] == {"set": True}
    for name in ("sampling", "LoRA training step"):
        data = checks[name]["data"]
        assert data["tokens_per_s"] > 0 and data["tokens"] > 0 and data["peak_gb"] > 0
    assert checks["sandbox round trip"]["data"]["ms"] > 0
    assert checks["embedded model"]["data"]["load_s"] > 0
    for name in ENVS:
        data = checks[f"verifier {name}"]["data"]
        assert data.get("skipped") == "needs CUDA" if name == "trimul" else data["valid"]
    assert report["problems"] == [f"{r}: {checks[r]['problem']}" for r in rows
                                  if checks[r]["problem"]]
    assert result.stdout.rstrip().splitlines()[-1].startswith(("problems: none", "  "))
