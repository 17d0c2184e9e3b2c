"""Check that ISA-specific instructions stay inside the ISA namespaces.

The GEMM micro-kernels are compiled three times (src/cnnkernels/gemm_avx512.cpp,
gemm_avx2.cpp, gemm_baseline.cpp) into one extension built WITHOUT -march.
If an inline or template function (std::min, a header helper, ...) were
instantiated inside the AVX-512 translation unit, the linker could pick that
copy for baseline callers too and the package would die with SIGILL on an older
CPU. This script disassembles the built extension and fails when any function
outside its ISA namespace uses a register or instruction class of that ISA:

  * zmm registers or opmask (k0-k7) instructions -> only in cnnkernels::isa_avx512
  * ymm registers or FMA (vfmadd...) instructions -> only in isa_avx512 / isa_avx2
  * any VEX/EVEX (v-prefixed xmm) instruction     -> only in isa_avx512 / isa_avx2

Usage: python src/check_isa_symbols.py [path/to/_cpp*.so]   (exit 1 on violation)
Needs binutils (objdump) and c++filt-style demangling (objdump -C).
"""
import glob
import os
import re
import subprocess
import sys

def find_extension():
    here = os.path.dirname(os.path.abspath(__file__))
    hits = sorted(glob.glob(os.path.join(here, "..", "cnnkernels", "_cpp*.so")))
    if not hits:
        sys.exit("no built extension found; pass its path")
    return hits[0]

def main():
    so = sys.argv[1] if len(sys.argv) > 1 else find_extension()
    out = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", so], capture_output=True, text=True,
                         check=True).stdout
    func = None
    bad = {}
    counts = {"avx512": 0, "avx2": 0}
    header = re.compile(r"^[0-9a-f]+ <(.*)>:$")
    for line in out.splitlines():
        m = header.match(line)
        if m:
            func = m.group(1)
            continue
        if func is None or "\t" not in line:
            continue
        insn = line.split("\t", 1)[1].strip()
        mnemonic = insn.split(" ", 1)[0]
        uses_zmm = "%zmm" in insn or re.search(r"%k[0-7]\b", insn) is not None
        uses_ymm = "%ymm" in insn or mnemonic.startswith("vfmadd") or mnemonic.startswith("vfnmadd")
        uses_vex = mnemonic.startswith("v") and "%xmm" in insn
        in512 = "cnnkernels::isa_avx512::" in func
        in2 = "cnnkernels::isa_avx2::" in func
        if uses_zmm and not in512:
            bad.setdefault(func, set()).add("zmm/opmask")
        elif (uses_ymm or uses_vex) and not (in512 or in2):
            bad.setdefault(func, set()).add("ymm/vex/fma")
        if uses_zmm and in512:
            counts["avx512"] += 1
        if uses_ymm and in2:
            counts["avx2"] += 1
    print(f"{so}: {counts['avx512']} zmm instructions in isa_avx512, {counts['avx2']} ymm/fma in isa_avx2")
    if not counts["avx512"] or not counts["avx2"]:
        print("warning: an ISA namespace has no ISA instructions (not an x86 build?)")
    if bad:
        for f, what in sorted(bad.items()):
            print(f"VIOLATION: {f}: {', '.join(sorted(what))}")
        return 1
    print("OK: no ISA-specific instructions outside the ISA namespaces")
    return 0

if __name__ == "__main__":
    sys.exit(main())
