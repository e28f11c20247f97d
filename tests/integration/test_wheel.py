"""The wheel carries the presets, and an installed copy (not the checkout) finds them."""

from __future__ import annotations

import subprocess
import sys
import zipfile

import pytest

from tests.conftest import REPO


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), str(REPO)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return next(out.glob("lorawiz-*.whl"))


def test_wheel_contains_presets_inside_the_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for preset in ("quick", "standard", "production", "memory", "time", "default", "high_capacity",
                   "memory_efficient", "quick_test"):
        assert f"lorawiz/_presets/{preset}.yaml" in names


def test_installed_wheel_finds_its_presets(wheel, tmp_path):
    target = tmp_path / "site"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                           str(wheel)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    probe = ("import lorawiz, lorawiz.presets as p; print(lorawiz.__file__); "
             "print(p.preset_path('default')); print(len(p.find_presets()))")
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": str(target), "PATH": ""}, timeout=60)
    assert run.returncode == 0, run.stderr
    module, default, count = run.stdout.split()
    assert module.startswith(str(target))
    assert default == str(target / "lorawiz" / "_presets" / "default.yaml")
    assert count == "9"
