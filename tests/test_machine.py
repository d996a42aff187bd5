"""What the suite assumes about the machine, checked. CI reruns the ``isa_sensitive`` tests with the variables of
tests/avx2.env, as an AVX2-only CPU (an AMD EPYC Zen 3, say) would run them: this proves that those variables
really switch off the AVX-512, AMX and bf16 paths of ATen, Inductor and oneDNN, on any machine. (MKL's choice is
not observable; MKL_ENABLE_INSTRUCTIONS is its documented switch. onnxruntime has none: export checks against it
are relative to the outputs' scale.) The restricted run keeps its own Inductor cache (TORCHINDUCTOR_CACHE_DIR):
frozen graphs prepack weights for the ISA oneDNN was allowed, and a kernel cached under one restriction crashed
("double free or corruption") when the other run reused it."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.isa_sensitive

AVX2_ENV = dict(line.split("=", 1) for line in (Path(__file__).parent / "avx2.env").read_text().split())


def test_the_avx2_environment_keeps_its_own_compile_cache():
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    assert AVX2_ENV["TORCHINDUCTOR_CACHE_DIR"] != default_cache_dir()  # not the unrestricted runs' cache

PROBE = """
import torch
from torch._inductor.cpu_vec_isa import pick_vec_isa
from modernconv.deploy.fast import native_dtype
torch.nn.functional.conv2d(torch.randn(8, 64, 28, 28), torch.randn(64, 64, 3, 3))  # a oneDNN primitive
print("aten", torch.backends.cpu.get_cpu_capability())
print("inductor", pick_vec_isa())
print("native bf16", native_dtype(torch.device("cpu"), "bf16"))
"""


def probe(env: dict[str, str]) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE], env={**os.environ, **env, "ONEDNN_VERBOSE": "1"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_avx2_environment_switches_off_avx512_amx_and_bf16():
    out = probe(AVX2_ENV)
    assert "aten AVX2" in out  # ATen's vectorised kernels
    assert "inductor avx2" in out  # the C++ that torch.compile generates
    assert "native bf16 False" in out  # so the fast path falls back to fp32
    assert "cpu,isa:Intel AVX2\n" in out  # oneDNN's convolutions and matmuls (its info line, not AVX2 + more)
