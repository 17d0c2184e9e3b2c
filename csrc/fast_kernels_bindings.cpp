// Bindings for the fast pooling and depthwise kernels (issue 6): check buffers with checks.h, release the GIL, call src/.
#include "checks.h"

namespace py = pybind11;

void register_fast_kernels(py::module_& m) {
    (void)m;  // no functions bound yet
}
