"""`keelson design`: every system type at every load is a valid platform, and its document states
exactly what its platform.yaml declares, with the sizing model's numbers."""

from __future__ import annotations

import os
from itertools import combinations
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from keelson.api.v1alpha1 import MicroservicePlatformSpec
from keelson.cli import main
from keelson.design import SYSTEM_TYPES, Blueprint, compose, parse_daily_users, system_blueprint
from keelson.design.catalogue import load_blueprint
from keelson.design.loads import MAX_DAILY_USERS, MIN_DAILY_USERS
from keelson.design.platform import PLACEHOLDER_REGISTRY, platform_yaml
from keelson.effective import effective_services
from keelson.sizing import size_for
from tests.cases import design_inventory as inventory

LOADS = ("10k", "1M", "10M")
GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "design"
GOLDEN_LOAD = "1M"


@pytest.mark.parametrize(
    ("text", "users"),
    [("10k", 10_000), ("250k", 250_000), ("1M", 1_000_000), ("1.5m", 1_500_000), ("10M", 10_000_000),
     ("50000", 50_000), ("1_000", 1_000), ("2B", 2_000_000_000)],
)  # fmt: skip
def test_loads_as_people_write_them(text: str, users: int) -> None:
    assert parse_daily_users(text) == users


@pytest.mark.parametrize("text", ["", "M", "1x", "ten", "1.5k5", "0", "-5", "0.5k1", "1.0001k", "20B"])
def test_loads_that_are_not_a_number_of_users_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"number of users|whole number|between"):
        parse_daily_users(text)


def test_load_bounds_are_the_apis() -> None:
    metadata = MicroservicePlatformSpec.model_fields["dailyUsers"].metadata
    assert [getattr(m, "ge", None) for m in metadata if hasattr(m, "ge")] == [MIN_DAILY_USERS]
    assert [getattr(m, "le", None) for m in metadata if hasattr(m, "le")] == [MAX_DAILY_USERS]


def _platform_text(system: str, load: str) -> tuple[str, str]:
    design = compose(system_blueprint(system), daily_users=parse_daily_users(load))
    return design.markdown, platform_yaml(design.manifest, command=f"keelson design --system {system}")


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("system", SYSTEM_TYPES)
def test_document_names_exactly_what_the_platform_declares(system: str, load: str) -> None:
    markdown, platform = _platform_text(system, load)
    declared, documented = inventory.of_platform(platform), inventory.of_document(markdown)
    assert documented == declared
    # Not vacuous: every type has services, databases, calls, and events with their DLQs.
    assert declared.services and declared.databases and declared.calls and declared.topics and declared.dlqs


@pytest.mark.parametrize("load", LOADS)
@pytest.mark.parametrize("system", SYSTEM_TYPES)
def test_numbers_in_the_document_are_the_sizing_models(system: str, load: str) -> None:
    markdown, platform = _platform_text(system, load)
    spec = MicroservicePlatformSpec.model_validate(yaml.safe_load(platform)["spec"])
    sized = size_for(parse_daily_users(load))
    assert spec.dailyUsers == sized.daily_users
    sizing = inventory.table(markdown, "step", "value")
    assert sizing is not None
    values = {row[0].content: row[1].content for row in sizing.rows}
    assert values["daily users"] == f"{sized.daily_users:,}"
    assert float(values["peak requests per second"].replace(",", "")) == sized.peak_rps
    assert float(values["average requests per second"].replace(",", "")) == sized.average_rps
    assert int(values["partitions per topic"]) == sized.partitions
    bounds = inventory.table(markdown, "service", "min replicas", "max replicas")
    assert bounds is not None
    table = {(row[0].children or [])[0].content: (int(row[1].content), int(row[2].content)) for row in bounds.rows}
    effective = {s.name: (s.autoscaling.min_replicas, s.autoscaling.max_replicas) for s in effective_services(spec)}
    assert table == effective
    assert set(effective.values()) == {(sized.min_replicas, sized.max_replicas)}
    topics = inventory.table(markdown, "topic", "published by")
    assert topics is not None
    assert {int(row[3].content) for row in topics.rows} == {sized.partitions}


@pytest.mark.parametrize("system", SYSTEM_TYPES)
def test_every_type_has_four_to_six_core_services_and_a_gateway(system: str) -> None:
    blueprint = system_blueprint(system)
    assert blueprint.system == system
    assert 4 <= len(blueprint.services) <= 6
    spec = compose(blueprint, daily_users=1_000_000).manifest["spec"]
    assert spec["services"][0] == {"name": "gateway", "reference": "gateway", "calls": spec["services"][0]["calls"]}
    assert set(spec["services"][0]["calls"]) == {s.name for s in blueprint.services if s.expose}


def test_types_are_not_each_other_renamed() -> None:
    """Each type has core services of its own: no two share their set of services, each has at
    least two services no other type has, and each its own event vocabulary."""
    custom = {t: {s.name for s in system_blueprint(t).services} for t in SYSTEM_TYPES}
    events = {t: {e for s in system_blueprint(t).services for e in s.publishes} for t in SYSTEM_TYPES}
    for a, b in combinations(SYSTEM_TYPES, 2):
        assert custom[a] != custom[b], (a, b)
    for t in SYSTEM_TYPES:
        others = set().union(*(custom[o] for o in SYSTEM_TYPES if o != t))
        assert len(custom[t] - others) >= 2, (t, custom[t] & others)
        other_events = set().union(*(events[o] for o in SYSTEM_TYPES if o != t))
        assert len(events[t] - other_events) >= 2, (t, events[t] & other_events)


@pytest.mark.parametrize("system", SYSTEM_TYPES)
def test_services_without_a_reference_get_a_marked_placeholder(system: str) -> None:
    design = compose(system_blueprint(system), daily_users=1_000_000)
    text = platform_yaml(design.manifest, command="keelson design")
    for svc in design.manifest["spec"]["services"]:
        assert ("reference" in svc) != ("image" in svc)
        if "image" in svc:
            assert svc["image"].startswith(PLACEHOLDER_REGISTRY + "/")
            assert svc["name"] in text.splitlines()[3]  # the PLACEHOLDER header line names it
            assert f"`{svc['image']}`" in design.markdown


@pytest.mark.parametrize("system", SYSTEM_TYPES)
def test_golden_design(system: str) -> None:
    """One design per type, reviewed by a person; KEELSON_UPDATE_GOLDEN=1 rewrites them."""
    markdown, platform = _platform_text(system, GOLDEN_LOAD)
    files = {GOLDEN / system / "design.md": markdown, GOLDEN / system / "platform.yaml": platform}
    if os.environ.get("KEELSON_UPDATE_GOLDEN") == "1":
        for path, text in files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    for path, text in files.items():
        assert path.read_text() == text, f"{path} differs; review, then KEELSON_UPDATE_GOLDEN=1"


def test_the_diagram_shows_every_service_topic_and_database() -> None:
    design = compose(system_blueprint("booking"), daily_users=1_000_000)
    [diagram] = inventory.mermaid_blocks(design.markdown)
    assert diagram.startswith("flowchart LR\n")
    labels = {line.split('"')[1] for line in diagram.splitlines() if '"' in line}
    declared = inventory.of_platform(yaml.safe_dump(design.manifest))
    assert labels == declared.services | declared.topics | {f"{d} db" for d in declared.databases}
    assert design.dot.startswith("digraph design {") and design.dot.count("shape=cylinder") == len(declared.databases)


def _blueprint(**changes: object) -> dict[str, object]:
    doc = system_blueprint("booking").model_dump(exclude_none=True)
    doc.update(changes)
    return doc


def test_blueprints_with_holes_are_refused() -> None:
    doc = _blueprint()
    services = list(doc["services"])  # type: ignore[call-overload]
    services[1] = {**services[1], "subscribes": {"room.cleaned": "x"}}
    with pytest.raises(ValidationError, match=r"no service publishes 'room\.cleaned'"):
        Blueprint.model_validate({**doc, "services": services})
    services = list(doc["services"])  # type: ignore[call-overload]
    services[1] = {**services[1], "calls": {"nobody": "x"}}
    with pytest.raises(ValidationError, match="not another service"):
        Blueprint.model_validate({**doc, "services": services})
    services = list(doc["services"])  # type: ignore[call-overload]
    services[1] = {**services[1], "stateless": "why not"}
    with pytest.raises(ValidationError, match="exactly one of database or stateless"):
        Blueprint.model_validate({**doc, "services": services})


def test_cli_writes_the_design(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["design", "--system", "booking", "--daily-users", "250k", "--out", str(tmp_path / "out")]) == 0
    written = {Path(line).name for line in capsys.readouterr().out.splitlines()}
    assert {"design.md", "platform.yaml", "design.dot"} <= written
    platform = (tmp_path / "out" / "platform.yaml").read_text()
    assert platform.startswith("# Generated by `keelson design --system booking --daily-users 250k`")
    assert yaml.safe_load(platform)["spec"]["dailyUsers"] == 250_000
    assert "250,000 daily users" in (tmp_path / "out" / "design.md").read_text()


def test_cli_takes_a_blueprint_of_ones_own(tmp_path: Path) -> None:
    own = _blueprint(system="clinic", title="Clinic", domain="clinic")
    (tmp_path / "clinic.yaml").write_text(yaml.safe_dump(own))
    assert load_blueprint(tmp_path / "clinic.yaml").domain == "clinic"
    assert (
        main(["design", "--services", str(tmp_path / "clinic.yaml"), "--daily-users", "10k", "--out", str(tmp_path)])
        == 0
    )
    assert yaml.safe_load((tmp_path / "platform.yaml").read_text())["spec"]["domain"] == "clinic"


def test_cli_refuses_a_bad_load_or_type(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["design", "--system", "booking", "--daily-users", "lots"]) == 1
    assert "not a number of users" in capsys.readouterr().err
    assert main(["design", "--system", "casino", "--daily-users", "1M"]) == 1
    assert "system types: ecommerce, booking" in capsys.readouterr().err
    assert main(["design", "--system", "booking", "--daily-users", "1M", "--name", "My_Hotel"]) == 1
    assert "platform name 'My_Hotel'" in capsys.readouterr().err


def test_the_consistency_check_sees_a_missing_or_extra_name() -> None:
    markdown, platform = _platform_text("booking", "1M")
    declared = inventory.of_platform(platform)
    dlq_row = next(
        line for line in markdown.splitlines() if line.startswith("| `booking.payment.failed` | `reservations`")
    )
    assert inventory.of_document(markdown.replace(dlq_row + "\n", "")).dlqs != declared.dlqs
    extra = markdown.replace("| `gateway` | `users` |", "| `gateway` | `payments` |")
    assert inventory.of_document(extra).calls != declared.calls


def test_cli_draws_the_svg_when_graphviz_is_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a `dot` on PATH, design.svg is drawn from design.dot (a stand-in records its arguments)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "dot"
    fake.write_text('#!/bin/sh\n# dot -Tsvg -o OUT IN\nprintf "<svg>%s</svg>" "$(head -1 "$4")" > "$3"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    assert main(["design", "--system", "gaming", "--daily-users", "10k", "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "design.svg").read_text() == "<svg>digraph design {</svg>"


def test_cli_without_graphviz_writes_no_svg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot there
    assert main(["design", "--system", "gaming", "--daily-users", "10k", "--out", str(tmp_path / "out")]) == 0
    assert not (tmp_path / "out" / "design.svg").exists() and (tmp_path / "out" / "design.dot").exists()
