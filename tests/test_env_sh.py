"""build/env.sh and build/<variant>/env.sh: what `make env` writes for each variant, without
building Caffe (the Makefile runs with BUILD in a temporary folder and `-o caffe`, so only the
env rules run)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRITE_ENV = ROOT / "scripts" / "write_env.sh"
VARIANTS = {
    "cpu": ["CPU_ONLY=1"],
    "cuda": ["CPU_ONLY=0"],
    "cuda-roicpu": ["CPU_ONLY=0", "ROI_LAYERS_CPU_ONLY=1"],
}
SHOWN = ("CAFFE_VARIANT", "CAFFE_ROOT", "PATH", "PYTHONPATH", "OMP_WAIT_POLICY")

needs_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def make(build: Path, *args: str) -> subprocess.CompletedProcess:
    """The project's Makefile with build/ and .venv/ moved under build (nothing real is touched);
    `-o caffe` skips building Caffe, so `env` runs only the env rules."""
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "-o", "caffe",
                           f"BUILD={build}", f"VENV={build}/venv", *args],
                          capture_output=True, text=True, env=env, check=True)


def sourced(env_sh: Path, shell: str = "bash", **extra: str) -> dict[str, str]:
    """The variables SHOWN after sourcing env_sh in a clean shell."""
    script = f'. "{env_sh}" && printf "%s\\n" ' + " ".join(f'"${k}"' for k in SHOWN)
    proc = subprocess.run([shell, "-c", script], capture_output=True, text=True, check=True,
                          env={"PATH": "/usr/bin:/bin", **extra})
    return dict(zip(SHOWN, proc.stdout.splitlines(), strict=True))


@needs_make
@pytest.mark.parametrize("variant", VARIANTS)
def test_make_env_writes_the_variant_and_points_build_env_at_it(tmp_path, variant):
    out = make(tmp_path, *VARIANTS[variant], "env").stdout
    assert f"done ({variant})" in out
    own = tmp_path / variant / "env.sh"
    assert own.is_file()
    assert f'. "{own}"' in (tmp_path / "env.sh").read_text()
    tree = tmp_path / variant
    for shell in ("bash", "sh"):
        for env_sh in (own, tmp_path / "env.sh"):
            got = sourced(env_sh, shell)
            assert got["CAFFE_VARIANT"] == variant
            assert got["CAFFE_ROOT"] == str(tree)
            assert got["PATH"].split(":")[:2] == [f"{tree}/.build_release/tools",
                                                  f"{tmp_path}/venv/bin"]
            assert got["PATH"].endswith(":/usr/bin:/bin")
            assert got["PYTHONPATH"] == f"{tree}/python:{ROOT}/python"
            assert got["OMP_WAIT_POLICY"] == "PASSIVE"


@needs_make
def test_build_env_follows_the_variant_built_last(tmp_path):
    make(tmp_path, *VARIANTS["cpu"], "env")
    cpu_env = (tmp_path / "cpu" / "env.sh").read_text()
    make(tmp_path, *VARIANTS["cuda-roicpu"], "env")
    assert sourced(tmp_path / "env.sh")["CAFFE_VARIANT"] == "cuda-roicpu"
    assert "the cuda-roicpu variant" in (tmp_path / "env.sh").read_text()
    assert (tmp_path / "cpu" / "env.sh").read_text() == cpu_env  # still there for its users
    make(tmp_path, *VARIANTS["cpu"], "env")  # the variant's env.sh is up to date: still switches
    assert sourced(tmp_path / "env.sh")["CAFFE_VARIANT"] == "cpu"


@needs_make
@pytest.mark.parametrize("target", ["demo", "test-py", "bench-roi", "bench-detect", "models"])
def test_targets_source_their_own_variant(tmp_path, target):
    """`make CPU_ONLY=0 ROI_LAYERS_CPU_ONLY=1 demo` uses that variant even if build/env.sh
    points elsewhere (-n: only print the commands)."""
    out = make(tmp_path, "-n", "-o", "all", "-o", "env", *VARIANTS["cuda-roicpu"], target).stdout
    assert f". {tmp_path}/cuda-roicpu/env.sh && " in out


def test_env_sh_keeps_a_users_settings(tmp_path):
    env_sh = tmp_path / "cuda" / "env.sh"
    subprocess.run(["bash", str(WRITE_ENV), "variant", str(env_sh), "cuda", str(ROOT),
                    str(tmp_path / "cuda"), str(tmp_path / "venv")], check=True)
    got = sourced(env_sh, PYTHONPATH="/mine", OMP_WAIT_POLICY="ACTIVE")
    assert got["PYTHONPATH"] == f"{tmp_path}/cuda/python:{ROOT}/python:/mine"
    assert got["OMP_WAIT_POLICY"] == "ACTIVE"


@pytest.mark.parametrize("args,rc,message", [
    ([], 2, "write_env.sh variant OUT"),
    (["variant", "x/env.sh", "cpu", "relative", "/b", "/v"], 2, "not an absolute path"),
    (["variant", "x/env.sh", "cpu", "/a$b", "/b", "/v"], 2, "unsupported character"),
    (["current", "env.sh", "cuda", "/nonexistent/cuda/env.sh"], 1, "build the cuda variant"),
])
def test_write_env_refuses_bad_arguments(tmp_path, args, rc, message):
    proc = subprocess.run(["bash", str(WRITE_ENV), *args], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == rc
    assert message in proc.stderr
    assert not (tmp_path / "env.sh").exists()
