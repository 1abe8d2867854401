"""``keelson dev``: the local stack from the command line.

Until the main CLI wires this in, run it as ``python -m keelson.devstack.cli dev up ...``.
"""

import argparse
import json
import subprocess
import sys
from pathlib import Path

from keelson.devstack.building import BuildError
from keelson.devstack.cluster import KubectlError
from keelson.devstack.kafkabroker import FormatError, JavaNotFoundError
from keelson.devstack.paths import default_state_dir
from keelson.devstack.pgserver import PostgresSetupError
from keelson.devstack.probes import NotReadyError
from keelson.devstack.services import RunError, run_platform, stop_platform
from keelson.devstack.stack import CONTROL_PLANE, DATA_SERVICES, LocalStack, StackError

_FAILURES = (
    StackError,
    RunError,
    NotReadyError,
    BuildError,
    KubectlError,
    FormatError,
    JavaNotFoundError,
    PostgresSetupError,
    subprocess.TimeoutExpired,
    OSError,
)


def _progress(message: str) -> None:
    # stderr, so that stdout stays clean for `eval "$(keelson dev env)"` and --json.
    print(f"[dev] {message}", file=sys.stderr, flush=True)


def shell_quote(value: str) -> str:
    """Single-quote for POSIX shells; a quote inside becomes '\\''."""
    return "'" + value.replace("'", "'\\''") + "'"


def _stack(args: argparse.Namespace) -> LocalStack:
    return LocalStack(Path(args.state_dir) if args.state_dir else default_state_dir())


def _cmd_up(args: argparse.Namespace) -> int:
    _stack(args).up(
        kafka=not args.no_kafka,
        postgres=not args.no_postgres,
        operator=not args.no_operator,
        kafka_plaintext=args.kafka_plaintext,
        progress=_progress,
    )
    return 0


def _cmd_down(args: argparse.Namespace) -> int:
    _stack(args).down(progress=_progress)
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    # `dev stop NAME` ends a platform's local services (the counterpart of `dev run NAME`);
    # a bare `dev stop` stops the whole stack, keeping its state.
    if args.platform:
        return _cmd_stop_services(args)
    _stack(args).stop(progress=_progress)
    return 0


def _cmd_env(args: argparse.Namespace) -> int:
    for key, value in _stack(args).env().items():
        print(f"export {key}={shell_quote(value)}")
    return 0


def _cmd_apply(args: argparse.Namespace) -> int:
    text = sys.stdin.read() if args.filename == "-" else Path(args.filename).read_text()
    _stack(args).apply_manifest(text, args.namespace, progress=_progress)
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    stack = _stack(args)
    url = run_platform(stack.state_dir, stack.kubectl(), args.platform, args.namespace, progress=_progress)
    print(f"gateway: {url}")
    _progress('`eval "$(keelson dev env)"` exports it as KEELSON_GATEWAY_URL')
    return 0


def _cmd_stop_services(args: argparse.Namespace) -> int:
    stack = _stack(args)
    stopped = stop_platform(stack.state_dir, args.platform, args.namespace, progress=_progress)
    if not stopped:
        _progress(f"no local services of {args.namespace}/{args.platform} were running")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    report = _stack(args).status()
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        width = max(len(name) for name in report)
        for name, state in report.items():
            print(f"{name:<{width}}  {state}")
    # Scriptable: success only when the control plane is healthy, and so is every data service
    # the last `up` started (one it left out says "not started (--no-...)").
    healthy = all(report.get(name) == "healthy" for name in CONTROL_PLANE) and all(
        report.get(name) == "healthy" or report.get(name, "").startswith("not started") for name in DATA_SERVICES
    )
    return 0 if healthy else 1


def _run(args: argparse.Namespace) -> int:
    try:
        return int(args.dev_func(args))
    except _FAILURES as error:
        print(f"error: {error}", file=sys.stderr)
        return 1


def add_dev_commands(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add ``dev up|down|stop [NAME]|env|apply|run|stop-services|status`` to a parser whose commands run
    ``args.func(args)``."""
    state = argparse.ArgumentParser(add_help=False)
    state.add_argument(
        "--state-dir",
        help="where the stack lives (default: $KEELSON_STATE_DIR, "
        "else ${XDG_STATE_HOME:-~/.local/state}/keelson/default)",
    )
    dev = subparsers.add_parser("dev", help="a local Kubernetes stack for development and tests")
    dev_sub = dev.add_subparsers(dest="dev_command", required=True)

    up = dev_sub.add_parser("up", parents=[state], help="build what is missing and start the stack (idempotent)")
    up.add_argument("--no-kafka", action="store_true", help="do not start Kafka")
    up.add_argument(
        "--kafka-plaintext",
        action="store_true",
        help="run Kafka's old plaintext listener: no TLS, no SASL, no authorizer (default: SASL_SSL with "
        "SCRAM-SHA-512 and ACLs; a stack keeps the mode its broker was first started with)",
    )
    up.add_argument("--no-postgres", action="store_true", help="do not start PostgreSQL")
    up.add_argument("--no-operator", action="store_true", help="do not run the operator (e.g. to run it yourself)")
    up.set_defaults(dev_func=_cmd_up)

    down = dev_sub.add_parser("down", parents=[state], help="stop the stack and delete its state")
    down.set_defaults(dev_func=_cmd_down)

    stop = dev_sub.add_parser(
        "stop",
        parents=[state],
        help="`dev stop NAME`: stop the local services `dev run NAME` started; "
        "`dev stop`: stop the whole stack, keeping its state for a warm `up`",
    )
    stop.add_argument("platform", nargs="?", help="a MicroservicePlatform whose local services to stop")
    stop.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    stop.set_defaults(dev_func=_cmd_stop)

    env = dev_sub.add_parser("env", parents=[state], help='print `export` lines: eval "$(keelson dev env)"')
    env.set_defaults(dev_func=_cmd_env)

    apply = dev_sub.add_parser(
        "apply", parents=[state], help="apply a platform manifest adapted to this stack's Kafka and PostgreSQL"
    )
    apply.add_argument("filename", help="manifest file, or - for stdin")
    apply.add_argument("-n", "--namespace", default="default", help="namespace to apply into (default: default)")
    apply.set_defaults(dev_func=_cmd_apply)

    run = dev_sub.add_parser(
        "run",
        parents=[state],
        help="run an applied platform's reference services as local processes, with the env the operator "
        "rendered, on loopback ports and with a local SMTP sink; prints the gateway's URL",
    )
    run.add_argument("platform", help="the MicroservicePlatform's name")
    run.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    run.set_defaults(dev_func=_cmd_run)

    stop_services = dev_sub.add_parser(
        "stop-services",
        parents=[state],
        help="the same as `dev stop NAME`: stop the local services `dev run` started for a platform",
    )
    stop_services.add_argument("platform", help="the MicroservicePlatform's name")
    stop_services.add_argument("-n", "--namespace", default="default", help="its namespace (default: default)")
    stop_services.set_defaults(dev_func=_cmd_stop_services)

    status = dev_sub.add_parser("status", parents=[state], help="each component's health")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(dev_func=_cmd_status)

    dev.set_defaults(func=_run)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="keelson")
    add_dev_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
