"""Build the optional C++ extension ``cnnkernels._cpp``.

The package works without it (every operation has a Numba kernel), so a failed
compile is reported and skipped rather than failing the install.
"""
import os
from glob import glob

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("NPY_NUM_BUILD_JOBS", default=2).install()

compile_args = ["-O3"]
if os.environ.get("CNNKERNELS_NATIVE") == "1":  # opt-in: the result only runs on this CPU kind
    compile_args.append("-march=native")

# The GEMM micro-kernels are compiled for AVX-512, AVX2 and a portable baseline
# (src/cnnkernels/gemm_<isa>.cpp, per-file `#pragma GCC target`) and picked at
# run time, so the default build needs no -march flag. After a build,
# `python src/check_isa_symbols.py` verifies that no shared symbol carries
# AVX/AVX-512 code.
ext = Pybind11Extension(
    "cnnkernels._cpp",
    sorted(glob("src/cnnkernels/*.cpp") + glob("csrc/*.cpp")),
    include_dirs=["src"],
    depends=sorted(glob("src/cnnkernels/*.h") + glob("src/cnnkernels/*.inc")),
    extra_compile_args=compile_args,
    extra_link_args=["-pthread"],
    cxx_std=17,
    optional=os.environ.get("CNNKERNELS_REQUIRE_CPP") != "1",
)

setup(ext_modules=[ext], cmdclass={"build_ext": build_ext})
