"""`scripts/image`: build the project's Dockerfile on this machine, with no registry and no Docker.

buildah and podman from Debian (runc as the runtime: crun cannot set rlimits or use hybrid cgroups
here), on container storage and configuration of the project's own under the cache
(``CONTAINERS_STORAGE_CONF``/``CONTAINERS_CONF``): nothing global is changed. ``FROM python:…``
cannot be pulled, so a stand-in base with Debian's Python is made with mmdebstrap, once per
``BASE_IMAGE_VERSION``, cached as a rootfs tarball like the stack's other upstream parts, and
imported into the private storage; the Dockerfile's ``ARG PYTHON_IMAGE`` points at it.

Standard library only: it runs before the project is installed (``scripts/image`` uses the
machine's python3).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from keelson.devstack import cache
from keelson.devstack.versions import BASE_IMAGE_SUITE, BASE_IMAGE_VERSION

# Debian packages and a file each one installs: how we tell it is there.
PACKAGES: dict[str, str] = {
    "buildah": "/usr/bin/buildah",
    "podman": "/usr/bin/podman",
    "runc": "/usr/sbin/runc",
    "mmdebstrap": "/usr/bin/mmdebstrap",
    "uidmap": "/usr/bin/newuidmap",
    "containernetworking-plugins": "/usr/lib/cni/loopback",
}
BASE_IMAGE = f"localhost/keelson-python-base:{BASE_IMAGE_VERSION}"
DEFAULT_TAG = "localhost/keelson:dev"
# What the official image puts on PATH; ``/usr/local`` is a venv in the stand-in, as there.
BASE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Extra CA certificates of the machine (PyPI may be reached through a TLS-intercepting proxy).
HOST_CA_DIR = Path("/usr/local/share/ca-certificates")
# nproc above about 32768 is refused on these machines.
NPROC_LIMIT = 4096


class ImageError(RuntimeError):
    pass


def _progress(message: str) -> None:
    print(f"[image] {message}", file=sys.stderr, flush=True)


# --- pure helpers (unit-tested) ---------------------------------------------------------------


def storage_conf(root: Path) -> str:
    return f'[storage]\ndriver = "overlay"\nrunroot = "{root / "run"}"\ngraphroot = "{root / "storage"}"\n'


def containers_conf(root: Path, nofile: int) -> str:
    return (
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={NPROC_LIMIT}:{NPROC_LIMIT}"]\n'
        "[network]\n"
        f'network_config_dir = "{root / "networks"}"\n'
        "[engine]\n"
        'runtime = "runc"\n'
        'cgroup_manager = "cgroupfs"\n'
        'events_logger = "file"\n'
        f'tmp_dir = "{root / "tmp"}"\n'
    )


def mmdebstrap_argv(rootfs: Path, ca_files: Sequence[Path], suite: str = BASE_IMAGE_SUITE) -> list[str]:
    """A minimal Debian with python3 and ``/usr/local`` a venv, as in the official image, without
    docs, man pages, locales and apt's lists (they would only add size)."""
    hooks = [f'cp {" ".join(str(f) for f in ca_files)} "$1/usr/local/share/ca-certificates/"'] if ca_files else []
    hooks += [
        'chroot "$1" update-ca-certificates',
        # No pip in /usr/local (the official image has one): the Dockerfile makes its own venv.
        'chroot "$1" python3 -m venv --without-pip /usr/local',
        'rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/* "$1"/var/log/*',
    ]
    # glibc's iconv modules too: Python has its own codecs.
    excludes = [
        "/usr/share/doc/*",
        "/usr/share/man/*",
        "/usr/share/info/*",
        "/usr/share/locale/*",
        "/usr/lib/x86_64-linux-gnu/gconv/*",
    ]
    return [
        "mmdebstrap",
        "--quiet",
        "--variant=minbase",
        "--include=python3,python3-venv,ca-certificates",
        # A merged /usr without the usrmerge package, which would bring all of Perl (~60 MB).
        "--hook-dir=/usr/share/mmdebstrap/hooks/merged-usr",
        *(f"--dpkgopt=path-exclude={pattern}" for pattern in excludes),
        "--dpkgopt=path-include=/usr/share/doc/*/copyright",  # licences stay
        *(f"--customize-hook={hook}" for hook in hooks),
        suite,
        str(rootfs),
    ]


def build_argv(context: Path, tag: str, base: str = BASE_IMAGE) -> list[str]:
    return [
        "buildah", "bud", "--layers", "--pull=never", "--network=host",
        "--build-arg", f"PYTHON_IMAGE={base}",
        "-t", tag, str(context),
    ]  # fmt: skip


@dataclass(frozen=True)
class Layer:
    size: int  # bytes
    created_by: str


def layers(history: list[dict[str, Any]]) -> list[Layer]:
    """``podman history --format json``, oldest first, without the empty (metadata) steps."""
    found = [Layer(int(h.get("size", 0)), str(h.get("CreatedBy") or h.get("createdBy") or "")) for h in history]
    return [layer for layer in reversed(found) if layer.size > 0]


def megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# --- the machine ------------------------------------------------------------------------------


def missing_packages() -> list[str]:
    return [package for package, path in PACKAGES.items() if not Path(path).exists()]


def ensure_packages(progress: Any = _progress) -> None:
    """Install buildah, podman, runc, mmdebstrap... from Debian when they are not there yet."""
    missing = missing_packages()
    if not missing:
        return
    if os.geteuid() != 0:
        raise ImageError(f"missing {' '.join(missing)}: run `sudo apt-get install -y {' '.join(missing)}`")
    progress(f"installing {' '.join(missing)} from Debian (once)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=600", *missing]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-o", "DPkg::Lock::Timeout=600"], env=env, check=True)
        subprocess.run(install, env=env, check=True)


def containers_dir() -> Path:
    """The project's own container storage and configuration, beside the stack's binaries."""
    return cache.cache_root() / "containers"


def container_env(root: Path | None = None) -> dict[str, str]:
    """The environment for buildah and podman on the private storage (written on first use)."""
    root = root or containers_dir()
    root.mkdir(parents=True, exist_ok=True)
    nofile = _hard_nofile()
    for name, text in (("storage.conf", storage_conf(root)), ("containers.conf", containers_conf(root, nofile))):
        path = root / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    return {
        **os.environ,
        "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
        "CONTAINERS_CONF": str(root / "containers.conf"),
    }


def _hard_nofile() -> int:
    import resource

    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return 1048576 if hard == resource.RLIM_INFINITY else int(hard)


def podman(*args: str, env: dict[str, str] | None = None, check: bool = True) -> str:
    result = subprocess.run(["podman", *args], env=env or container_env(), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise ImageError(f"podman {' '.join(args[:2])} failed: {result.stderr.strip()}")
    return result.stdout


@contextlib.contextmanager
def _lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_rootfs(version: str = BASE_IMAGE_VERSION, progress: Any = _progress) -> Path:
    """The stand-in base's rootfs tarball, made with mmdebstrap on a cache miss (~1 min)."""
    final = cache.bin_dir("python-base", version)
    tarball = final / "rootfs.tar"
    if tarball.is_file():
        return tarball
    with _lock(final.parent / f".{final.name}.lock"):
        if tarball.is_file():
            return tarball
        progress(f"making the stand-in base image {version} with mmdebstrap (first time only, about a minute)")
        staging = Path(tempfile.mkdtemp(dir=final.parent, prefix=f"{final.name}.building-"))
        try:
            ca_files = sorted(HOST_CA_DIR.glob("*.crt")) if HOST_CA_DIR.is_dir() else []
            result = subprocess.run(
                mmdebstrap_argv(staging / "rootfs.tar", ca_files), capture_output=True, text=True, check=False
            )
            if result.returncode != 0:
                raise ImageError(f"mmdebstrap failed:\n{result.stderr[-4000:]}")
            if final.exists():
                shutil.rmtree(final)
            staging.chmod(0o755)
            staging.rename(final)
        finally:
            if staging.exists():
                shutil.rmtree(staging)
    return tarball


def ensure_base(env: dict[str, str], progress: Any = _progress) -> str:
    """The stand-in base in the private storage, imported from the cached rootfs when missing."""
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env, check=False).returncode == 0:
        return BASE_IMAGE
    tarball = base_rootfs(progress=progress)
    with _lock(containers_dir() / ".base.lock"):
        if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env, check=False).returncode != 0:
            progress(f"importing {BASE_IMAGE}")
            changes = [f"ENV PATH={BASE_PATH}", "ENV LANG=C.UTF-8", 'CMD ["python3"]']
            argv = ["podman", "import", *(a for c in changes for a in ("--change", c)), str(tarball), BASE_IMAGE]
            result = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise ImageError(f"podman import failed: {result.stderr.strip()}")
    return BASE_IMAGE


def build(context: Path, tag: str = DEFAULT_TAG, progress: Any = _progress) -> str:
    """Build the Dockerfile in ``context`` as ``tag`` (layers cached); returns the tag."""
    ensure_packages(progress)
    env = container_env()
    base = ensure_base(env, progress)
    previous = _image_id(tag, env)
    started = time.monotonic()
    result = subprocess.run(build_argv(context, tag, base), env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"buildah bud failed:\n{(result.stdout + result.stderr)[-6000:]}")
    progress(f"built {tag} in {time.monotonic() - started:.1f}s")
    if previous and previous != _image_id(tag, env):
        # The image this tag named before, now nameless: ~115 MB each build would otherwise keep.
        remove(previous, env)
    return tag


def _image_id(name: str, env: dict[str, str]) -> str | None:
    result = subprocess.run(
        ["podman", "image", "inspect", "--format", "{{.Id}}", name],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


def remove(name: str, env: dict[str, str] | None = None) -> None:
    """Untag, or remove an image no other name refers to, keeping the build's cached layers
    (``--no-prune``); an image still in use or named elsewhere is left alone."""
    subprocess.run(["podman", "rmi", "--no-prune", name], env=env or container_env(), capture_output=True, check=False)


def save(tag: str, archive: Path) -> None:
    """An uncompressed OCI archive (``podman load -i`` reads it)."""
    if archive.exists():
        archive.unlink()
    podman("save", "--format", "oci-archive", "--uncompressed", "-o", str(archive), tag)


def history(tag: str) -> list[Layer]:
    return layers(json.loads(podman("history", "--format", "json", tag)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/image", description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--save", type=Path, metavar="FILE", help="also write the image as an uncompressed OCI archive")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"the image's name (default {DEFAULT_TAG})")
    parser.add_argument("--context", type=Path, default=Path.cwd(), help="the directory holding the Dockerfile")
    args = parser.parse_args(argv)
    try:
        tag = build(args.context, args.tag)
        for layer in history(tag):
            print(f"{megabytes(layer.size):>10}  {layer.created_by[:100]}")
        size = int(podman("image", "inspect", "--format", "{{.Size}}", tag).strip())
        print(f"{megabytes(size):>10}  total ({tag})")
        if args.save:
            save(tag, args.save)
            print(f"saved {tag} to {args.save}")
    except (ImageError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"podman with the same storage: export {' '.join(f'{k}={v}' for k, v in _storage_vars().items())}")
    return 0


def _storage_vars() -> dict[str, str]:
    env = container_env()
    return {key: env[key] for key in ("CONTAINERS_STORAGE_CONF", "CONTAINERS_CONF")}


if __name__ == "__main__":
    raise SystemExit(main())
