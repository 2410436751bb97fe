"""The README's section "From Python", as a user meets it: a fresh virtual
environment, the wheel installed into it, the example run as written (its
address and certificate folder pointed at this test's server)."""

import os
import pathlib
import subprocess
import venv

import pytest

from conftest import ROOT


def readme_python() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## From Python\n", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_example_runs_in_a_fresh_environment(server, pki, tmp_path):
    wheel = os.environ.get("MBAPS_WHEEL")
    if not wheel:
        pytest.fail("MBAPS_WHEEL is not set: cargo xtask ci builds the wheel and sets it")
    fresh = tmp_path / "venv"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-deps", wheel],
        check=True,
    )
    script = readme_python().replace("127.0.0.1:8802", server.address).replace("certs/", f"{pki}/")
    # And where the package it ran came from.
    script += "\nimport sys; print(mbaps.__file__, file=sys.stderr)\n"
    (tmp_path / "read.py").write_text(script)
    done = subprocess.run([str(python), "read.py"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "[100, 101, 102]",
        "denied: 1",
        "[[0], [1], [2], [3]]",
    ], done.stdout
    # The package it ran is the wheel's, installed in the fresh venv.
    assert done.stderr.strip().startswith(str(fresh)), done.stderr
