"""What `make test-container` needs: Docker, a stand-in Lambda Python image, and a `sam build`.

Image registries are out of reach here, so AWS's Lambda base image cannot be pulled. The stand-in
is built offline from package registries only: a Debian root filesystem (debootstrap) with the
template runtime's Python, the Lambda runtime interface client from PyPI (awslambdaric) and
`/var/runtime/bootstrap`, imported with `docker import`. `sam local invoke --invoke-image` adds its
own runtime interface emulator on top. The image is built for this machine's architecture: a
template for arm64 is built and run as x86_64 on an x86_64 machine (same code, same runtime, the
layer's wheels for the machine's architecture). The root filesystem is cached between runs.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

from tickwatch.template import Template

# The Debian release whose python3 is each runtime's Python.
DEBIAN_SUITES = {"python3.13": "trixie", "python3.11": "bookworm"}
DEBIAN_MIRROR = "http://deb.debian.org/debian"
ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
_WHEEL_PLATFORMS = {"x86_64": "x86_64", "arm64": "aarch64"}
IMAGE_REPOSITORY = "tickwatch/lambda-python"
BOOTSTRAP = """#!/bin/sh
# Start the Python runtime interface client on the function's handler, as Lambda's image does.
cd "${LAMBDA_TASK_ROOT:-/var/task}"
exec /usr/bin/PYTHON -m awslambdaric "$_HANDLER"
"""


class ContainerSetupError(RuntimeError):
    """Something `make test-container` needs is missing and cannot be provided here."""


def machine_architecture() -> str:
    machine = platform.machine().lower()
    if machine not in ARCHITECTURES:
        raise ContainerSetupError(f"no Lambda architecture for this machine ({machine})")
    return ARCHITECTURES[machine]


def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tickwatch" / "container"


def _run(command: list[str], **options: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, check=True, text=True, **options)  # type: ignore[call-overload]


def docker_running() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True, check=False).returncode == 0


def ensure_docker(log: Path) -> None:
    """Docker from Debian's packages if it is missing, and a daemon if none is running."""
    if docker_running():
        return
    missing = [name for name in ("dockerd", "iptables", "debootstrap") if shutil.which(name) is None]
    if missing:
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise ContainerSetupError(
                f"{', '.join(missing)} missing; install docker.io, iptables and debootstrap (needs root and apt-get)"
            )
        _run(["apt-get", "install", "-y", "-q", "docker.io", "iptables", "debootstrap"], capture_output=True)
    if shutil.which("dockerd") is None:
        raise ContainerSetupError("dockerd is not installed")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:
        subprocess.Popen(["dockerd"], stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while not docker_running():
        if time.monotonic() > deadline:
            raise ContainerSetupError(f"dockerd did not start within 60 s; see {log}")
        time.sleep(1)


def image_tag(runtime: str, architecture: str) -> str:
    return f"{IMAGE_REPOSITORY}:{runtime.removeprefix('python')}-{architecture}"


def ensure_image(runtime: str, architecture: str, work: Path) -> str:
    """The stand-in image for a runtime, built unless Docker already has it."""
    tag = image_tag(runtime, architecture)
    if subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0:
        return tag
    archive = cache_dir() / f"rootfs-{runtime}-{architecture}.tar"
    if not archive.exists():
        _build_root_filesystem(runtime, architecture, work / "rootfs", archive)
    python = runtime.removeprefix("python")
    changes = [
        "ENV LAMBDA_TASK_ROOT=/var/task",
        "ENV LAMBDA_RUNTIME_DIR=/var/runtime",
        f"ENV PYTHONPATH=/var/runtime:/opt/python:/opt/python/lib/python{python}/site-packages",
        "ENV LANG=C.UTF-8",
        "ENV TZ=:UTC",
        "WORKDIR /var/task",
        'ENTRYPOINT ["/var/runtime/bootstrap"]',
    ]
    command = ["docker", "import"]
    for change in changes:
        command += ["--change", change]
    _run([*command, str(archive), tag], capture_output=True)
    return tag


def _build_root_filesystem(runtime: str, architecture: str, root: Path, archive: Path) -> None:
    suite = DEBIAN_SUITES.get(runtime)
    if suite is None:
        raise ContainerSetupError(f"no Debian release here has {runtime}'s Python; known: {', '.join(DEBIAN_SUITES)}")
    python = runtime.removeprefix("python")
    if root.exists():
        shutil.rmtree(root)
    _run(
        [
            "debootstrap",
            "--variant=minbase",
            f"--include=python{python},ca-certificates",
            suite,
            str(root),
            DEBIAN_MIRROR,
        ],
        capture_output=True,
    )
    runtime_dir = root / "var" / "runtime"
    platform_tag = _WHEEL_PLATFORMS[architecture]
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--target",
            str(runtime_dir),
            "--only-binary=:all:",
            "--implementation",
            "cp",
            "--python-version",
            python,
            "--platform",
            f"manylinux2014_{platform_tag}",
            "--platform",
            f"manylinux_2_17_{platform_tag}",
            "awslambdaric",
        ],
        capture_output=True,
    )
    bootstrap = runtime_dir / "bootstrap"
    bootstrap.write_text(BOOTSTRAP.replace("PYTHON", f"python{python}"), encoding="utf-8")
    bootstrap.chmod(0o755)
    (root / "var" / "task").mkdir(parents=True, exist_ok=True)
    (root / "opt").mkdir(parents=True, exist_ok=True)
    for leftover in (root / "var" / "cache" / "apt" / "archives").glob("*.deb"):
        leftover.unlink()
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        tar.add(root, arcname=".")
    partial.replace(archive)
    shutil.rmtree(root)


def template_for(architecture: str, source: Path, destination: Path) -> Path:
    """template.yaml with every architecture setting turned to `architecture` (text, so that the
    CloudFormation tags stay as written)."""
    text = source.read_text(encoding="utf-8")
    text = re.sub(r"(Architectures: \[)[a-z0-9_]+(\])", rf"\g<1>{architecture}\g<2>", text)
    text = re.sub(r"(BuildArchitecture: )[a-z0-9_]+", rf"\g<1>{architecture}", text)
    destination.parent.mkdir(parents=True, exist_ok=True)
    destination.write_text(text, encoding="utf-8")
    return destination


def sam_build(sam: Path, template: Path, base_dir: Path, build_dir: Path, architecture: str) -> Path:
    """`sam build` of a template into `build_dir`; returns the built template."""
    _run(
        [
            str(sam),
            "build",
            "--template-file",
            str(template),
            "--base-dir",
            str(base_dir),
            "--build-dir",
            str(build_dir),
            "--cache-dir",
            str(base_dir / ".aws-sam" / f"cache-{architecture}"),
            "--cached",
        ],
        capture_output=True,
        # sam looks for the runtime's python on PATH: this environment's is one.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            # layers/common/Makefile: the layer's wheels for the architecture the container runs.
            "TICKWATCH_BUILD_ARCHITECTURE": architecture,
        },
    )
    return build_dir / "template.yaml"


def runtime_of(template: Template) -> str:
    return template.body["Globals"]["Function"]["Runtime"]
