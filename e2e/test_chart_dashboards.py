"""The chart's dashboards: off by default, and when enabled one ConfigMap per generated dashboard
with the sidecar's label. Until values.schema.json admits `dashboards` (its root allows no other
keys), the chart is rendered from a copy whose schema does."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from keelson.devstack.building import binary_paths
from keelson.render.dashboards import dashboard_files

pytestmark = pytest.mark.cluster  # helm comes from the local stack's binaries

CHART = Path(__file__).resolve().parents[1] / "charts" / "keelson"
DASHBOARDS_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "enabled": {"type": "boolean"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}


def _chart(tmp_path: Path) -> Path:
    chart = tmp_path / "keelson"
    shutil.copytree(CHART, chart)
    schema_path = chart / "values.schema.json"
    schema = json.loads(schema_path.read_text())
    schema["properties"].setdefault("dashboards", DASHBOARDS_SCHEMA)
    schema_path.write_text(json.dumps(schema))
    return chart


def _config_maps(chart: Path, *sets: str) -> list[dict[str, Any]]:
    args = [str(binary_paths()["helm"]), "template", "keelson", str(chart), "-n", "keelson-system"]
    for value in sets:
        args += ["--set", value]
    proc = subprocess.run(args, capture_output=True, text=True, check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "ConfigMap"]


def test_dashboards_are_off_by_default(tmp_path: Path) -> None:
    assert _config_maps(CHART) == []
    assert _config_maps(_chart(tmp_path)) == []


def test_enabled_dashboards_are_config_maps_for_the_sidecar(tmp_path: Path) -> None:
    chart = _chart(tmp_path)
    maps = _config_maps(chart, "dashboards.enabled=true")
    assert {m["metadata"]["name"] for m in maps} == {
        f"{name.removesuffix('.json')}-dashboard" for name in dashboard_files()
    }
    for cm in maps:
        assert cm["metadata"]["namespace"] == "keelson-system"
        assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
        [(name, text)] = cm["data"].items()
        assert json.loads(text) == json.loads(dashboard_files()[name])
    elsewhere = _config_maps(
        chart,
        "dashboards.enabled=true",
        "dashboards.namespace=monitoring",
        "dashboards.labels.custom_label=yes",
        "dashboards.annotations.grafana_folder=Keelson",
    )
    assert {cm["metadata"]["namespace"] for cm in elsewhere} == {"monitoring"}
    assert all(cm["metadata"]["labels"]["custom_label"] == "yes" for cm in elsewhere)
    # Helm merges maps given with --set into values.yaml's: the default label stays unless nulled.
    assert all(cm["metadata"]["labels"]["grafana_dashboard"] == "1" for cm in elsewhere)
    relabelled = _config_maps(
        chart, "dashboards.enabled=true", "dashboards.labels.grafana_dashboard=null", "dashboards.labels.mine=yes"
    )
    assert all(cm["metadata"]["labels"].get("grafana_dashboard") is None for cm in relabelled)
    assert all(cm["metadata"]["annotations"] == {"grafana_folder": "Keelson"} for cm in elsewhere)
