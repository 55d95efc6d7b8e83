"""Packaging: `make serve` installs only what serving needs, CI runs `make lint` too, the
repository carries its LICENSE, and the Dockerfile and compose file are right.

Base images cannot be pulled here, so the Dockerfile is checked as text, then its install
and start steps are run for real on this machine: its `pip install` in a fresh virtual
environment (no dev extra), then its CMD on a free loopback port, probed with its own
HEALTHCHECK.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.live import free_port, wait_until_up

ROOT = Path(__file__).resolve().parents[2]

#: Packages only the dev extra brings: none may be in what `serve` or the image installs.
DEV_ONLY = {"pytest", "django", "mypy", "ruff", "playwright", "schemathesis", "import-linter"}


# -- the Makefile and CI ------------------------------------------------------------------


def _dry_run(target: str) -> str:
    """What ``make TARGET`` would run from scratch (nothing is run)."""
    # Not as a sub-make of `make test`: none of its flags or its jobserver.
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    result = subprocess.run(
        ["make", "-C", str(ROOT), "--no-print-directory", "--dry-run", "--always-make", target],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        env=env,
    )
    return result.stdout


def _pip_installs(commands: str) -> list[str]:
    return [line for line in commands.splitlines() if "pip install" in line]


def test_make_serve_installs_the_package_without_its_dev_extra() -> None:
    serve = _dry_run("serve")
    installs = [line for line in _pip_installs(serve) if "--upgrade pip" not in line]

    assert installs, serve
    assert all("[dev]" not in line for line in installs), installs
    assert any(shlex.split(line)[-1] == "." for line in installs), installs
    assert serve.strip().splitlines()[-1].endswith("authprofiles serve")


def test_make_test_installs_the_dev_extra() -> None:
    installs = _pip_installs(_dry_run("test"))

    assert any(".[dev]" in line for line in installs), installs


def test_ci_runs_make_lint_as_well_as_make_test() -> None:
    commands = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip() and not line.strip().startswith("#")
    ]

    assert "make lint" in commands
    assert commands[-1] == "make test"  # its closing line is the suite's summary
    lint = _dry_run("lint")
    for tool in ("ruff check", "ruff format --check", "mypy", "lint-imports"):
        assert tool in lint, lint


def test_the_repository_carries_the_apache_2_license_its_metadata_names() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    text = (ROOT / "LICENSE").read_text()

    assert project["license"] == "Apache-2.0"
    assert "Apache License" in text
    assert "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text


# -- the Dockerfile, read -----------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    flags: list[str]
    #: The exec form's list, or the shell form's command line.
    args: list[str] | str


def _parse_dockerfile(text: str) -> list[Instruction]:
    instructions: list[Instruction] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, rest = logical.partition(" ")
        logical = ""
        flags: list[str] = []
        rest = rest.strip()
        while rest.startswith("--"):
            flag, _, rest = rest.partition(" ")
            flags.append(flag)
            rest = rest.strip()
        if keyword.upper() == "HEALTHCHECK":  # HEALTHCHECK [flags] CMD ...
            assert rest.startswith("CMD "), rest
            rest = rest.removeprefix("CMD ").strip()
        args: list[str] | str = json.loads(rest) if rest.startswith("[") else rest
        instructions.append(Instruction(keyword.upper(), flags, args))
    return instructions


@pytest.fixture(scope="module")
def dockerfile() -> list[Instruction]:
    return _parse_dockerfile((ROOT / "Dockerfile").read_text())


def _one(instructions: list[Instruction], keyword: str) -> Instruction:
    found = [i for i in instructions if i.keyword == keyword]
    assert len(found) == 1, (keyword, found)
    return found[0]


def _env_pairs(instruction: Instruction) -> dict[str, str]:
    assert isinstance(instruction.args, str)
    return dict(part.split("=", 1) for part in shlex.split(instruction.args))


def _is_install(instruction: Instruction) -> bool:
    return instruction.keyword == "RUN" and "pip install" in str(instruction.args)


def test_the_dockerfile_serves_unprivileged_from_a_slim_python_with_its_data_in_a_volume(
    dockerfile: list[Instruction],
) -> None:
    keywords = [i.keyword for i in dockerfile]
    base = _one(dockerfile, "FROM").args
    assert isinstance(base, str) and re.fullmatch(r"python:3\.1[1-9]-slim\S*", base), base

    user = _one(dockerfile, "USER").args
    assert user not in ("root", "0") and isinstance(user, str)
    name = user.split(":")[0]
    assert any(
        i.keyword == "RUN" and re.search(rf"useradd\b[^&]*\s{name}(\s|$)", str(i.args))
        for i in dockerfile
    ), "the USER is created by a RUN useradd"
    install_at = next(n for n, i in enumerate(dockerfile) if _is_install(i))
    assert install_at < keywords.index("USER") < keywords.index("CMD")

    assert _one(dockerfile, "EXPOSE").args == "8000"
    assert _one(dockerfile, "VOLUME").args == ["/data"]
    env: dict[str, str] = {}
    for instruction in dockerfile:
        if instruction.keyword == "ENV":
            env |= _env_pairs(instruction)
    assert env["AUTHPROFILES_DATABASE_URL"] == "sqlite:////data/authprofiles.db"
    assert env["AUTHPROFILES_KEY_FILE"] == "/data/authprofiles.key"

    healthcheck = _one(dockerfile, "HEALTHCHECK").args
    assert "/healthz" in " ".join(healthcheck)
    assert _one(dockerfile, "CMD").args == ["authprofiles", "serve", "--host", "0.0.0.0"]


def test_the_dockerfile_installs_the_package_the_way_make_serve_does(
    dockerfile: list[Instruction],
) -> None:
    installs = [i for i in dockerfile if _is_install(i)]

    assert len(installs) == 1
    command = str(installs[0].args)
    assert "[dev]" not in command
    assert command.split("pip install", 1)[1].split() == ["."]


def _pattern(glob: str) -> re.Pattern[str]:
    """A .dockerignore pattern as a regular expression (``**`` any folders, ``*`` and
    ``?`` within one name)."""
    out = ""
    i = 0
    while i < len(glob):
        if glob.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif glob.startswith("**", i):
            out, i = out + ".*", i + 2
        elif glob[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif glob[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(glob[i]), i + 1
    return re.compile(out)


def _ignored(path: str, patterns: list[str]) -> bool:
    """Whether the build context leaves ``path`` out, by .dockerignore's rules: the last
    pattern matching it or a folder above it decides, a ``!`` one letting it in."""
    parts = path.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    ignored = False
    for pattern in patterns:
        regex = _pattern(pattern.removeprefix("!").strip("/"))
        if any(regex.fullmatch(candidate) for candidate in candidates):
            ignored = not pattern.startswith("!")
    return ignored


@pytest.fixture(scope="module")
def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _copied(dockerfile: list[Instruction]) -> list[str]:
    sources: list[str] = []
    for instruction in dockerfile:
        if instruction.keyword == "COPY":
            parts = shlex.split(str(instruction.args))
            sources.extend(parts[:-1])
    return sources


def test_the_build_context_holds_what_the_image_copies_and_no_local_data(
    dockerfile: list[Instruction], dockerignore: list[str]
) -> None:
    for source in _copied(dockerfile):
        assert (ROOT / source).exists(), source
        assert not _ignored(source, dockerignore), source
    assert not _ignored("src/authprofiles/web/templates/home.html", dockerignore)
    for local in (
        ".venv/bin/python",
        ".git/config",
        "authprofiles.db",
        "authprofiles.key",
        "tests/conftest.py",
        "src/authprofiles/__pycache__/app.cpython-311.pyc",
    ):
        assert _ignored(local, dockerignore), local


def test_compose_runs_the_image_on_postgresql() -> None:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    services = compose["services"]
    app, postgres = services["authprofiles"], services["postgres"]

    assert app["build"] == "."
    assert postgres["image"].startswith("postgres:")
    assert "healthcheck" in postgres
    assert app["depends_on"]["postgres"]["condition"] == "service_healthy"
    url = app["environment"]["AUTHPROFILES_DATABASE_URL"]
    assert url.startswith("postgresql+psycopg://authprofiles:")
    assert url.endswith("@postgres:5432/authprofiles")
    assert postgres["environment"]["POSTGRES_USER"] == "authprofiles"
    assert postgres["environment"]["POSTGRES_DB"] == "authprofiles"
    assert any(volume.split(":")[1] == "/data" for volume in app["volumes"])
    assert "8000:8000" in app["ports"][0]
    assert set(compose["volumes"]) >= {v.split(":")[0] for v in app["volumes"]}


# -- the Dockerfile, run ------------------------------------------------------------------


@dataclass
class Image:
    """The Dockerfile's steps played on this machine: its paths mapped under ``root``."""

    root: Path
    paths: dict[str, Path]
    env: dict[str, str]

    def map(self, text: str) -> str:
        for image_path, local in sorted(self.paths.items(), key=lambda p: -len(p[0])):
            text = text.replace(image_path, str(local))
        return text

    def expand(self, value: str) -> str:
        return re.sub(r"\$\{?(\w+)\}?", lambda m: self.env.get(m.group(1), ""), self.map(value))


def _python_dir(root: Path) -> Path:
    """A folder whose `python` is this interpreter's base, as the image's `python` is."""
    folder = root / "python-bin"
    folder.mkdir()
    base = Path(getattr(sys, "_base_executable", sys.executable))
    (folder / "python").symlink_to(base)
    return folder


@pytest.fixture(scope="module")
def image(
    dockerfile: list[Instruction], dockerignore: list[str], tmp_path_factory: pytest.TempPathFactory
) -> Image:
    """Build the image's files here: copy the build context, run the install step."""
    root = tmp_path_factory.mktemp("image")
    workdirs = [str(i.args) for i in dockerfile if i.keyword == "WORKDIR"]
    paths = {
        "/opt/authprofiles": root / "opt" / "authprofiles",
        "/data": root / "data",
        workdirs[0]: root / "src",
    }
    for local in paths.values():
        local.parent.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": f"{_python_dir(root)}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(root)),
    }
    image = Image(root, paths, env)
    workdir = root
    for instruction in dockerfile:
        if instruction.keyword == "WORKDIR":
            workdir = Path(image.map(str(instruction.args)))
            workdir.mkdir(parents=True, exist_ok=True)
        elif instruction.keyword == "ENV":
            for name, value in _env_pairs(instruction).items():
                image.env[name] = image.expand(value)
        elif instruction.keyword == "COPY":
            *sources, target = shlex.split(str(instruction.args))
            into = len(sources) > 1 or target.endswith("/")
            for source in sources:
                _copy_context(source, workdir / target, into, dockerignore)
        elif _is_install(instruction):
            # The image's own step, its paths mapped (a BuildKit cache mount aside).
            command = image.map(str(instruction.args))
            run = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", command],
                cwd=workdir,
                env=image.env,
                capture_output=True,
                text=True,
                timeout=900,  # from the local wheels it is quick; from PyPI it downloads
            )
            assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-4000:]
    return image


def _copy_context(source: str, destination: Path, into: bool, ignore: list[str]) -> None:
    """COPY ``source`` (a file or a folder's contents) to ``destination``, or ``into`` it
    (several sources, or a target ending in ``/``), leaving out what .dockerignore does."""
    path = ROOT / source
    if path.is_file():
        target = destination / path.name if into else destination
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
        return
    for file in sorted(path.rglob("*")):
        inside = file.relative_to(path)
        if file.is_file() and not _ignored(f"{source}/{inside}", ignore):
            target = destination / inside
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(file, target)


@pytest.fixture(scope="module")
def running(image: Image, dockerfile: list[Instruction]) -> Iterator[tuple[str, dict[str, str]]]:
    """The image's CMD, on a free loopback port instead of every interface."""
    command = _one(dockerfile, "CMD").args
    assert isinstance(command, list)
    port = free_port()
    env = {**image.env, "AUTHPROFILES_PORT": str(port)}
    argv = ["127.0.0.1" if arg == "0.0.0.0" else arg for arg in command]
    executable = shutil.which(argv[0], path=env["PATH"])
    assert executable and executable.startswith(str(image.root)), executable
    log = image.root / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [executable, *argv[1:]],
            cwd=image.paths["/data"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            wait_until_up(url, timeout=60, process=process)
        except RuntimeError as exc:
            raise AssertionError(log.read_text()) from exc
        yield url, env
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=5)


def test_the_image_install_brings_no_dev_tools(image: Image) -> None:
    python = image.paths["/opt/authprofiles"] / "bin" / "python"
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env=image.env,
    )
    installed = {p["name"].lower() for p in json.loads(listed.stdout)}

    assert "authprofiles" in installed
    assert not installed & DEV_ONLY, installed & DEV_ONLY


def test_the_image_command_serves_and_its_healthcheck_passes(
    running: tuple[str, dict[str, str]], dockerfile: list[Instruction], image: Image
) -> None:
    url, env = running
    healthcheck = _one(dockerfile, "HEALTHCHECK").args
    assert isinstance(healthcheck, list)

    probe = subprocess.run(
        [shutil.which(healthcheck[0], path=env["PATH"]) or healthcheck[0], *healthcheck[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert probe.returncode == 0, probe.stderr
    with httpx.Client(base_url=url, trust_env=False, timeout=30) as http:
        assert http.get("/readyz").status_code == 200
        home = http.get("/")
        assert home.status_code == 200 and "authprofiles" in home.text
    # Its data went where the volume is.
    assert (image.paths["/data"] / "authprofiles.db").exists()
    assert (image.paths["/data"] / "authprofiles.key").exists()
