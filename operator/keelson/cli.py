"""The `keelson` command."""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from keelson.api.components import ComponentDefinition, ComponentDefinitionSpec
from keelson.api.crd import crd_yaml, definition_crd_yaml, platform_service_crd_yaml
from keelson.api.v1alpha1 import REFERENCE_SERVICES
from keelson.components.resolve import resolve
from keelson.kafkaclient import KafkaSecurity
from keelson.manifests import field_lines, load_definition_documents, load_platforms
from keelson.render import DEFAULT_REFERENCE_IMAGE, ComponentProblems, RenderContext, render_platform
from keelson.render.vet import vet_definition


def _cmd_crd(args: argparse.Namespace) -> int:
    texts = {
        "MicroservicePlatform": crd_yaml,
        "ComponentDefinition": definition_crd_yaml,
        "PlatformService": platform_service_crd_yaml,
    }
    text = texts[args.kind]()
    for output in args.output or []:
        Path(output).write_text(text)
    if not args.output:
        sys.stdout.write(text)
    return 0


def _cmd_render(args: argparse.Namespace) -> int:
    try:
        platforms = load_platforms(args.filename)
    except ValidationError as exc:
        print(f"error: invalid platform in {args.filename}:\n{exc}", file=sys.stderr)
        return 1
    if not platforms:
        print(f"error: no MicroservicePlatform in {args.filename}", file=sys.stderr)
        return 1
    try:
        definitions = _definitions(args)
    except (ValidationError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    docs = []
    for platform in platforms:
        namespace = args.namespace or platform.metadata.namespace
        try:
            components = tuple(resolve(platform.spec, definitions))
            ctx = RenderContext(
                name=platform.metadata.name,
                namespace=namespace,
                spec=platform.spec,
                reference_image=args.image,
                components=components,
            )
            docs.extend(render_platform(ctx))
        except ComponentProblems as exc:
            for problem in exc.problems:
                print(f"{args.filename}: {platform.metadata.name}: {problem}", file=sys.stderr)
            return 1
    sys.stdout.write(yaml.safe_dump_all(docs, sort_keys=False, width=120))
    return 0


def _definitions(args: argparse.Namespace) -> list[ComponentDefinitionSpec]:
    """The definitions a render resolves against: the files given, the platform file's own, and
    with --cluster-definitions the cluster's (through kubectl and its current context)."""
    sources = [*(args.definitions or []), *([args.filename] if args.filename != "-" else [])]
    docs = [doc for _, doc in load_definition_documents(sources)]
    if args.cluster_definitions:
        proc = subprocess.run(
            ["kubectl", "get", "componentdefinitions.keelson.dev", "-o", "json"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"kubectl get componentdefinitions: {proc.stderr.strip()}")
        docs.extend(json.loads(proc.stdout).get("items") or [])
    return [ComponentDefinition.model_validate(doc).spec for doc in docs]


def _cmd_def_vet(args: argparse.Namespace) -> int:
    """One line per problem: file:line: path: message."""
    failed = 0
    for path in args.files:
        text = Path(path).read_text()
        try:
            docs = list(yaml.safe_load_all(text))
            lines = field_lines(text)
        except yaml.YAMLError as exc:
            print(f"{path}: not YAML: {exc}".replace("\n", " "))
            failed += 1
            continue
        seen = 0
        for doc, where in zip(docs, lines, strict=True):
            if not isinstance(doc, dict) or doc.get("kind") != "ComponentDefinition":
                continue
            seen += 1
            name = (doc.get("metadata") or {}).get("name", "?")
            for problem in vet_definition(doc):
                print(f"{path}:{_line_of(problem, where)}: {name}: {problem}")
                failed += 1
        if not seen:
            print(f"{path}: no ComponentDefinition")
            failed += 1
    if not failed:
        print(f"ok: {len(args.files)} file(s)")
    return 1 if failed else 0


def _line_of(problem: str, lines: dict[str, int]) -> int:
    """The line of the longest field path the problem starts with; inside a template, the
    template's own line on top (a block scalar starts on the line after its key)."""
    path = problem.split(" ", 1)[0].rstrip(":")
    best = max((p for p in lines if p and path.startswith(p)), key=len, default="")
    line = lines.get(best, 1)
    match = re.match(r"^spec\.templates\[(\d+)\] \([^)]*\): line (\d+):", problem)
    if match:
        start = lines.get(f"spec.templates[{match.group(1)}].template")
        if start is not None:
            return start + int(match.group(2))
    return line


def _cmd_design(args: argparse.Namespace) -> int:
    from keelson.design import SYSTEM_TYPES, compose, load_blueprint, parse_daily_users, system_blueprint
    from keelson.design.platform import platform_yaml

    try:
        users = parse_daily_users(args.daily_users)
        blueprint = load_blueprint(Path(args.services)) if args.services else system_blueprint(args.system)
        design = compose(blueprint, daily_users=users, name=args.name)
    except (ValueError, OSError, yaml.YAMLError) as exc:  # pydantic's ValidationError is a ValueError
        print(f"error: {exc}", file=sys.stderr)
        if not args.services and args.system not in SYSTEM_TYPES:
            print(f"system types: {', '.join(SYSTEM_TYPES)}", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    source = f"--services {shlex.quote(args.services)}" if args.services else f"--system {args.system}"
    named = f" --name {args.name}" if args.name else ""
    command = f"keelson design {source} --daily-users {shlex.quote(args.daily_users)}{named}"
    written = {
        "design.md": design.markdown,
        "platform.yaml": platform_yaml(design.manifest, command=command),
        "design.dot": design.dot,
    }
    for name, text in written.items():
        (out / name).write_text(text)
    dot = shutil.which("dot")
    if dot:  # the SVG is a convenience: the Mermaid diagram in design.md is the one that is always there
        subprocess.run([dot, "-Tsvg", "-o", str(out / "design.svg"), str(out / "design.dot")], check=True)
        written["design.svg"] = ""
    for name in written:
        print(out / name)
    return 0


def _dlq_depths(platform: dict[str, Any], bootstrap: str | None) -> tuple[dict[str, int], str]:
    from keelson.status.view import dlq_partitions

    dlqs = dlq_partitions(platform)
    if not dlqs:
        return {}, ""
    if not bootstrap:
        return {}, "not read (--kafka-bootstrap HOST:PORT, or KEELSON_KAFKA_BOOTSTRAP, to ask the brokers)"
    from keelson.status.depths import dlq_depths

    try:
        return dlq_depths(
            bootstrap, dlqs, KafkaSecurity.from_env(os.environ)
        ), f"messages retained, from Kafka at {bootstrap}"
    except (OSError, TimeoutError) as exc:
        return {}, f"not read: {exc or 'Kafka at ' + bootstrap + ' did not answer in time'}"


def _cmd_status(args: argparse.Namespace) -> int:
    import json
    from datetime import UTC, datetime

    from kubernetes.client.exceptions import ApiException

    from keelson.status.reading import NoCluster, PlatformNotFound, Reader
    from keelson.status.text import Style, format_platform, format_summary
    from keelson.status.view import platform_view, summary_row

    colour = args.color == "always" or (args.color == "auto" and sys.stdout.isatty() and "NO_COLOR" not in os.environ)
    style = Style(colour=colour)
    try:
        reader = Reader()
        if args.name is None:
            rows = [summary_row(o) for o in reader.platforms(args.namespace)]
            if args.output == "json":
                print(json.dumps([vars(r) for r in rows], indent=2))
            else:
                sys.stdout.write(format_summary(rows, style=style))
            return 0
        objs = reader.platform(args.name, args.namespace or reader.default_namespace())
    except (PlatformNotFound, NoCluster) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ApiException, OSError) as exc:
        print(f"error: cannot read from the API server: {exc}", file=sys.stderr)
        return 1
    depths, source = _dlq_depths(objs.platform, args.kafka_bootstrap)
    try:
        view = platform_view(
            objs.platform,
            deployments=objs.deployments,
            hpas=objs.hpas,
            events=objs.events,
            dlq_depths=depths,
            dlq_depth_source=source,
        )
    except ValidationError as exc:  # a spec this version of Keelson does not read (a newer CRD's)
        print(f"error: {args.name}: its spec is not one this keelson reads:\n{exc}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps(view.to_json(), indent=2))
    else:
        sys.stdout.write(format_platform(view, now=datetime.now(UTC), style=style))
    return 0


def _cmd_dashboards(args: argparse.Namespace) -> int:
    from keelson.render.dashboards import dashboard_files

    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    for name, text in dashboard_files().items():
        (out / name).write_text(text)
        print(out / name)
    return 0


def _cmd_operator(args: argparse.Namespace) -> int:
    from keelson.controller.main import run

    return run(
        metrics_port=args.metrics_port,
        health_port=args.health_port,
        namespaces=args.namespace,
        leader_election=args.leader_elect,
    )


def _cmd_service(args: argparse.Namespace) -> int:
    # The image's command for a reference service is its name (see render/deployment.py).
    from keelson_services.run import main as run_service

    return run_service([args.command, *args.service_args])


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="keelson", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    crd = sub.add_parser("crd", help="print a CRD generated from the API models")
    crd.add_argument(
        "--kind",
        choices=["MicroservicePlatform", "ComponentDefinition", "PlatformService"],
        default="MicroservicePlatform",
        help="which CRD (default MicroservicePlatform)",
    )
    crd.add_argument("-o", "--output", action="append", help="write to this file instead of stdout (repeatable)")
    crd.set_defaults(func=_cmd_crd)

    render = sub.add_parser("render", help="print the Kubernetes objects a platform becomes, touching no cluster")
    render.add_argument("-f", "--filename", required=True, help="platform manifest, or - for stdin")
    render.add_argument("-n", "--namespace", help="namespace of the objects (default: the manifest's, or default)")
    render.add_argument("--image", default=DEFAULT_REFERENCE_IMAGE, help="image of the reference services")
    render.add_argument(
        "-d",
        "--definitions",
        action="append",
        help="ComponentDefinitions: a file or a directory of them (repeatable; the platform file's own count too)",
    )
    render.add_argument(
        "--cluster-definitions",
        action="store_true",
        help="also resolve against the cluster's ComponentDefinitions (kubectl, current context)",
    )
    render.set_defaults(func=_cmd_render)

    definition = sub.add_parser("def", help="tools for ComponentDefinition authors")
    def_sub = definition.add_subparsers(dest="def_command", required=True)
    vet = def_sub.add_parser("vet", help="check definitions: fields, schema, templates, an example render")
    vet.add_argument("files", nargs="+", help="YAML files with ComponentDefinitions")
    vet.set_defaults(func=_cmd_def_vet)

    design = sub.add_parser(
        "design", help="write the architecture document and the platform manifest for a system type and a load"
    )
    source = design.add_mutually_exclusive_group(required=True)
    source.add_argument("--system", help="ecommerce, booking, social, analytics, saas or gaming")
    source.add_argument("--services", metavar="FILE", help="a blueprint of your own, in the catalogue's shape")
    design.add_argument("--daily-users", required=True, help="expected daily users: 10k, 250k, 1M, 10M or a number")
    design.add_argument("--name", help="the platform's name (default: the system type)")
    design.add_argument("--out", default=".", help="directory to write into (default: the current one)")
    design.set_defaults(func=_cmd_design)

    status = sub.add_parser("status", help="show one platform's services, topics, databases, conditions and events")
    status.add_argument("name", nargs="?", help="the platform (default: a summary of all)")
    status.add_argument("-n", "--namespace", help="its namespace (default: the kubeconfig's; all for the summary)")
    status.add_argument("-o", "--output", choices=["text", "json"], default="text")
    status.add_argument(
        "--kafka-bootstrap",
        default=os.environ.get("KEELSON_KAFKA_BOOTSTRAP"),
        help="brokers to read the DLQ depths from (default: $KEELSON_KAFKA_BOOTSTRAP; none: not read)",
    )
    status.add_argument("--color", choices=["auto", "always", "never"], default="auto", help="auto: on a terminal")
    status.set_defaults(func=_cmd_status)

    dash = sub.add_parser(
        "dashboards", help="write the Grafana dashboards' JSON (the chart's charts/keelson/dashboards)"
    )
    dash.add_argument("-o", "--output", required=True, help="directory to write into")
    dash.set_defaults(func=_cmd_dashboards)

    op = sub.add_parser("operator", help="run the operator")
    op_sub = op.add_subparsers(dest="operator_command", required=True)
    run = op_sub.add_parser("run", help="run the operator in the foreground")
    run.add_argument("--metrics-port", type=int, default=8080)
    run.add_argument("--health-port", type=int, default=8081)
    run.add_argument("-n", "--namespace", action="append", help="watch only these namespaces (default: all)")
    run.add_argument(
        "--leader-elect",
        action=argparse.BooleanOptionalAction,
        default=os.environ.get("KEELSON_LEADER_ELECTION", "").lower() in ("1", "true", "yes"),
        help="run as one of several replicas: only the holder of the Lease keelson-operator in POD_NAMESPACE "
        "writes (default: $KEELSON_LEADER_ELECTION; timings: KEELSON_LEASE_DURATION_SECONDS, "
        "KEELSON_LEASE_RENEW_DEADLINE_SECONDS, KEELSON_LEASE_RETRY_PERIOD_SECONDS)",
    )
    run.set_defaults(func=_cmd_operator)

    try:
        from keelson.devstack.cli import add_dev_commands
    except ImportError:  # pragma: no cover - the dev stack is part of the package
        pass
    else:
        add_dev_commands(sub)
    for service in REFERENCE_SERVICES:
        svc = sub.add_parser(service, help=f"run the {service} reference service")
        svc.add_argument("service_args", nargs=argparse.REMAINDER, help="an administrative command, if any")
        svc.set_defaults(func=_cmd_service)
    try:
        from keelson_services.messaging.dlq_cli import add_dlq_commands
    except ImportError:  # pragma: no cover - the services' library ships in the same distribution
        pass
    else:
        add_dlq_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
