// Python bindings of the implicit-GEMM convolution (src/cnnkernels/igemm.h):
// weight packing and the convolution, every buffer and argument validated.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <limits>
#include <string>

#include "checks.h"
#include "cnnkernels/geometry.h"
#include "cnnkernels/igemm.h"

namespace py = pybind11;
namespace ck = cnnkernels;
using namespace cnnkernels_py;

namespace {

int itemsize(Dtype dt) { return dt == Dtype::f32 ? 4 : 8; }

// (groups, panels, R, NR) for weights w (K, C/groups, KD, KH, KW).
py::tuple packed_shape_of(const py::array& w, i64 groups, Dtype dt) {
    if (groups < 1) throw py::value_error("groups must be >= 1, got " + std::to_string(groups));
    const i64 K = w.shape(0);
    if (K % groups) throw py::value_error("w.shape[0] (" + std::to_string(K) + ") must be divisible by groups (" +
                                          std::to_string(groups) + ")");
    const __int128 R = (__int128)w.shape(1) * w.shape(2) * w.shape(3) * w.shape(4);
    check_index_range(R * (K + 64) * 2, "weights");
    return py::make_tuple(groups, ck::igemm_panels(K, groups, itemsize(dt)), i64(R), ck::igemm_nr(itemsize(dt)));
}

void check_packed(const py::array& packed, const py::array& w, i64 groups, Dtype dt) {
    check_layout(packed, "packed", 4, false);
    check_same_dtype(packed, "packed", dt, "w");
    const py::tuple want = packed_shape_of(w, groups, dt);
    for (int d = 0; d < 4; ++d)
        if (packed.shape(d) != want[d].cast<i64>())
            throw py::value_error("packed must have shape igemm_weights_shape(w, groups) = " +
                                  std::string(py::str(want)) + ", got " + shape_str(packed));
}

py::tuple weights_shape(py::object w_, i64 groups) {
    py::array w = as_array(w_, "w");
    check_layout(w, "w", 5, false);
    return packed_shape_of(w, groups, float_dtype(w, "w"));
}

void pack_weights(py::object w_, py::object packed_, i64 groups) {
    py::array w = as_array(w_, "w"), packed = as_array(packed_, "packed");
    check_layout(w, "w", 5, false);
    const Dtype dt = float_dtype(w, "w");
    check_packed(packed, w, groups, dt);
    if (!packed.writeable()) throw py::value_error("packed must be writeable");
    check_no_overlap(packed, "packed", w, "w");
    const i64 K = w.shape(0), R = packed.shape(2);
    const void* wp = w.data();
    void* pp = packed.mutable_data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        ck::igemm_pack_weights<float>(K, R, groups, static_cast<const float*>(wp), static_cast<float*>(pp));
    else
        ck::igemm_pack_weights<double>(K, R, groups, static_cast<const double*>(wp), static_cast<double*>(pp));
}

void conv(py::object x_, py::object w_, py::object packed_, py::object bias_, py::object y_, py::object stride_,
          py::object pad_, py::object dilation_, i64 groups, i64 threads, i64 workspace_bytes, double act_min,
          double act_max, i64 chunk_bytes) {
    ConvCall c = check_conv_call(x_, w_, bias_, y_, stride_, pad_, dilation_, groups, threads, workspace_bytes,
                                       act_min, act_max);
    const ck::ConvGeometry& g = c.g;
    py::array packed = as_array(packed_, "packed");
    check_packed(packed, c.w, groups, c.dt);
    // The padded input slab and every offset into it stay far below 2**62.
    __int128 padded = 1;
    for (int d = 0; d < 3; ++d)
        padded *= (__int128)g.out[d] * g.stride[d] + (__int128)g.kernel[d] * g.dilation[d] + g.pad[d] + g.in[d];
    check_index_range(padded * (g.C + 1) * (g.N + 1), "convolution size");
    check_no_overlap(c.y, "y", packed, "packed");
    if (chunk_bytes < 0) throw py::value_error("chunk_bytes must be >= 0 (0: the kernel's own), got " +
                                               std::to_string(chunk_bytes));

    const void* xp = c.x.data();
    const void* pp = packed.data();
    const void* bp = c.has_bias ? c.bias.data() : nullptr;
    void* yp = c.y.mutable_data();
    const Dtype dt = c.dt;
    const int nthreads = c.threads;
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        ck::conv_igemm<float>(g, static_cast<const float*>(xp), static_cast<const float*>(pp),
                              static_cast<const float*>(bp), static_cast<float*>(yp), nthreads, workspace_bytes,
                              act_min, act_max, chunk_bytes);
    else
        ck::conv_igemm<double>(g, static_cast<const double*>(xp), static_cast<const double*>(pp),
                               static_cast<const double*>(bp), static_cast<double*>(yp), nthreads, workspace_bytes,
                               act_min, act_max, chunk_bytes);
}

}  // namespace

void register_igemm(py::module_& m) {
    m.def("igemm_weights_shape", &weights_shape, py::arg("w"), py::arg("groups"),
          "Shape (groups, panels, R, NR) of w (K, C/groups, KD, KH, KW) packed for igemm_conv in this process "
          "(NR: the micro-kernel's channels per panel, R = C/groups * KD*KH*KW).");
    m.def("igemm_pack_weights", &pack_weights, py::arg("w"), py::arg("packed"), py::arg("groups"),
          "Packs w into the preallocated packed (igemm_weights_shape(w, groups), dtype of w).");
    m.def("igemm_conv", &conv, py::arg("x"), py::arg("w"), py::arg("packed"), py::arg("bias"), py::arg("y"),
          py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("threads"),
          py::arg("workspace_bytes"), py::arg("act_min") = -std::numeric_limits<double>::infinity(),
          py::arg("act_max") = std::numeric_limits<double>::infinity(), py::arg("chunk_bytes") = 0,
          "Implicit-GEMM N-d convolution into preallocated y (N, K, OD, OH, OW) from x, w (for its shape) and "
          "packed (igemm_pack_weights of w); outputs clamped to [act_min, act_max], NaN stays NaN. chunk_bytes: "
          "weights per reduction chunk (a tuning variant; 0: the kernel's own, igemm_chunk_bytes).");
    m.def("igemm_chunk_bytes", [](i64 elem_size) {
              if (elem_size != 4 && elem_size != 8)
                  throw py::value_error("elem_size must be 4 or 8, got " + std::to_string(elem_size));
              return elem_size == 4 ? ck::igemm_chunk_bytes<float>() : ck::igemm_chunk_bytes<double>();
          }, py::arg("elem_size"), "Weights per reduction chunk of this process's igemm kernel (bytes).");
}
