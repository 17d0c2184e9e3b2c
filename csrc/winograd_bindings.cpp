// Bindings for the Winograd convolution (issue 4): check buffers with checks.h, release the GIL, call src/.
#include <cmath>
#include <limits>
#include <string>

#include "checks.h"
#include "cnnkernels/winograd.h"

namespace py = pybind11;
namespace ck = cnnkernels;
using namespace cnnkernels_py;

namespace {

// m from a transform matrix size n = m + 2 (m in 2, 4, 6).
int check_n(i64 n, const char* what) {
    if (n != 4 && n != 6 && n != 8)
        throw py::value_error(std::string(what) + ": n = m + 2 must be 4, 6 or 8 (m = 2, 4, 6), got n = " +
                              std::to_string(n));
    return int(n);
}

py::array float64_matrix(py::handle h, const char* name, i64 rows, i64 cols) {
    py::array a = as_array(h, name);
    check_layout(a, name, 2, false);
    if (!py::isinstance<py::array_t<double>>(a))
        throw py::type_error(std::string(name) + " must have dtype float64, got " + std::string(py::str(a.dtype())));
    if ((rows >= 0 && a.shape(0) != rows) || (cols >= 0 && a.shape(1) != cols))
        throw py::value_error(std::string(name) + " must have shape (" + (rows >= 0 ? std::to_string(rows) : "n") +
                              ", " + (cols >= 0 ? std::to_string(cols) : "n") + "), got " + shape_str(a));
    const double* p = static_cast<const double*>(a.data());
    for (i64 i = 0; i < a.shape(0) * a.shape(1); ++i)
        if (!std::isfinite(p[i])) throw py::value_error(std::string(name) + " must be finite");
    return a;
}

void check_m(i64 m) {
    if (m != 2 && m != 4 && m != 6) throw py::value_error("m must be 2, 4 or 6, got " + std::to_string(m));
}

py::tuple u_shape(i64 K, i64 C, i64 groups, i64 m) {
    check_m(m);
    if (groups < 1) throw py::value_error("groups must be >= 1, got " + std::to_string(groups));
    if (K < 0 || C < 0) throw py::value_error("K and C must be >= 0");
    if (K % groups || C % groups)
        throw py::value_error("K (" + std::to_string(K) + ") and C (" + std::to_string(C) +
                              ") must be divisible by groups (" + std::to_string(groups) + ")");
    const i64 n = m + 2;
    return py::make_tuple(groups, n * n, ck::winograd_kpad(K / groups), C / groups);
}

void transform_weights(py::object w_, py::object U_, py::object G_, i64 groups, i64 threads_) {
    py::array w = as_array(w_, "w"), U = as_array(U_, "U");
    check_layout(w, "w", 5, false);
    check_layout(U, "U", 4, true);
    const Dtype dt = float_dtype(w, "w");
    check_same_dtype(U, "U", dt, "w");
    py::array G = float64_matrix(G_, "G", -1, 3);
    const int n = check_n(G.shape(0), "G");
    if (groups < 1) throw py::value_error("groups must be >= 1, got " + std::to_string(groups));
    if (w.shape(2) != 1 || w.shape(3) != 3 || w.shape(4) != 3)
        throw py::value_error("w must have shape (K, C/groups, 1, 3, 3), got " + shape_str(w));
    const i64 K = w.shape(0), Cg = w.shape(1);
    if (K % groups)
        throw py::value_error("w.shape[0] (" + std::to_string(K) + ") must be divisible by groups (" +
                              std::to_string(groups) + ")");
    check_index_range((__int128)groups * n * n * ck::winograd_kpad(K / groups) * (Cg + 1) + K * Cg * 9, "weights");
    const i64 want[4] = {groups, i64(n) * n, ck::winograd_kpad(K / groups), Cg};
    for (int d = 0; d < 4; ++d)
        if (U.shape(d) != want[d])
            throw py::value_error("U must have shape (" + std::to_string(want[0]) + ", " + std::to_string(want[1]) +
                                  ", " + std::to_string(want[2]) + ", " + std::to_string(want[3]) +
                                  ") = (groups, n*n, K/groups rounded up to 32, C/groups), got " + shape_str(U));
    check_no_overlap(U, "U", w, "w");
    check_no_overlap(U, "U", G, "G");
    const int threads = check_threads(threads_);
    const void* wp = w.data();
    const double* gp = static_cast<const double*>(G.data());
    void* up = U.mutable_data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        ck::winograd_transform_weights<float>(K, Cg, groups, n, static_cast<const float*>(wp), gp,
                                              static_cast<float*>(up), threads);
    else
        ck::winograd_transform_weights<double>(K, Cg, groups, n, static_cast<const double*>(wp), gp,
                                               static_cast<double*>(up), threads);
}

bool conv(py::object x_, py::object U_, py::object bias_, py::object y_, py::object pad_, py::object AT_,
          py::object BT_, i64 threads, i64 workspace_bytes, double act_min, double act_max, i64 block_bytes) {
    py::array x = as_array(x_, "x"), U = as_array(U_, "U"), y = as_array(y_, "y");
    const Dtype dt = check_xwy(x, U, "U", 4, y);
    py::array bias;
    const bool has_bias = !bias_.is_none();
    if (has_bias) {
        bias = as_array(bias_, "bias");
        check_layout(bias, "bias", 1, false);
        check_same_dtype(bias, "bias", dt, "x");
    }
    py::array AT = float64_matrix(AT_, "AT", -1, -1);
    const int n = check_n(AT.shape(1), "AT");
    const int m = n - 2;
    if (AT.shape(0) != m) throw py::value_error("AT must have shape (m, m + 2), got " + shape_str(AT));
    py::array BT = float64_matrix(BT_, "BT", n, n);
    const Triple pad = get3(pad_, "pad");
    check_min(pad, 0, "pad");
    if (pad[0] != 0) throw py::value_error("pad[0] (depth) must be 0, got " + std::to_string(pad[0]));
    const int nthreads = check_threads(threads);
    check_workspace_bytes(workspace_bytes);
    check_act_range(act_min, act_max);
    if (block_bytes < 0)
        throw py::value_error("block_bytes must be >= 0 (0: the default), got " + std::to_string(block_bytes));
    if (x.shape(2) != 1 || y.shape(2) != 1)
        throw py::value_error("x and y must have depth 1 (2-D convolution), got x " + shape_str(x) + ", y " +
                              shape_str(y));
    ck::WinogradGeometry g{};
    g.N = x.shape(0);
    g.C = x.shape(1);
    g.K = y.shape(1);
    g.groups = U.shape(0);
    g.H = x.shape(3);
    g.W = x.shape(4);
    g.OH = y.shape(3);
    g.OW = y.shape(4);
    g.pad_top = pad[1];
    g.pad_left = pad[2];
    g.m = m;
    if (g.groups < 1) throw py::value_error("U.shape[0] (groups) must be >= 1, got " + shape_str(U));
    if (y.shape(0) != g.N)
        throw py::value_error("y.shape[0] must equal x.shape[0]: x " + shape_str(x) + ", y " + shape_str(y));
    if (g.K % g.groups)
        throw py::value_error("y.shape[1] (" + std::to_string(g.K) + ") must be divisible by groups (U.shape[0] = " +
                              std::to_string(g.groups) + ")");
    if (U.shape(1) != i64(n) * n || U.shape(2) != ck::winograd_kpad(g.K / g.groups) ||
        (__int128)U.shape(3) * g.groups != g.C)
        throw py::value_error("U must have shape (groups, n*n, K/groups rounded up to 32, C/groups) = (" +
                              std::to_string(g.groups) + ", " + std::to_string(n * n) + ", " +
                              std::to_string(ck::winograd_kpad(g.K / g.groups)) + ", " +
                              std::to_string(g.C / g.groups) + ") for x " + shape_str(x) + ", y " + shape_str(y) +
                              " and m = " + std::to_string(m) + ", got " + shape_str(U));
    if (has_bias && bias.shape(0) != g.K)
        throw py::value_error("bias must have shape (" + std::to_string(g.K) + ",), got " + shape_str(bias));
    check_index_range((__int128)g.OH + g.OW + g.H + g.W + g.pad_top + g.pad_left + 64, "convolution geometry");
    check_index_range((__int128)(g.OH + 8) * (g.OW + 8) * (g.C + g.K + 64) * 64 * (g.N + 1), "convolution size");
    check_no_overlap(y, "y", x, "x");
    check_no_overlap(y, "y", U, "U");
    check_no_overlap(y, "y", AT, "AT");
    check_no_overlap(y, "y", BT, "BT");
    if (has_bias) check_no_overlap(y, "y", bias, "bias");

    const void* xp = x.data();
    const void* up = U.data();
    const void* bp = has_bias ? bias.data() : nullptr;
    void* yp = y.mutable_data();
    const double* atp = static_cast<const double*>(AT.data());
    const double* btp = static_cast<const double*>(BT.data());
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        return ck::winograd_conv<float>(g, static_cast<const float*>(xp), static_cast<const float*>(up),
                                        static_cast<const float*>(bp), static_cast<float*>(yp), atp, btp, nthreads,
                                        workspace_bytes, act_min, act_max, block_bytes);
    return ck::winograd_conv<double>(g, static_cast<const double*>(xp), static_cast<const double*>(up),
                                     static_cast<const double*>(bp), static_cast<double*>(yp), atp, btp, nthreads,
                                     workspace_bytes, act_min, act_max, block_bytes);
}

// Scratch bytes winograd_conv would allocate (the registry refuses Winograd when
// even its floor, one tile per block, is over the configured workspace).
i64 workspace_bytes(i64 N, i64 C, i64 K, i64 groups, i64 OH, i64 OW, i64 m, i64 elem_size, i64 threads,
                    i64 workspace_bytes, bool bias) {
    check_m(m);
    if (elem_size != 4 && elem_size != 8)
        throw py::value_error("elem_size must be 4 or 8, got " + std::to_string(elem_size));
    if (groups < 1) throw py::value_error("groups must be >= 1, got " + std::to_string(groups));
    if (N < 0 || C < 0 || K < 0 || OH < 0 || OW < 0)
        throw py::value_error("N, C, K, OH and OW must be >= 0");
    if (C % groups || K % groups) throw py::value_error("C and K must be divisible by groups");
    check_workspace_bytes(workspace_bytes);
    const int nthreads = check_threads(threads);
    check_index_range((__int128)(OH + 8) * (OW + 8) * (C + K + 64) * 64 * (N + 1), "convolution size");
    ck::WinogradGeometry g{};
    g.N = N;
    g.C = C;
    g.K = K;
    g.groups = groups;
    g.OH = OH;
    g.OW = OW;
    g.m = int(m);
    return ck::winograd_workspace_bytes(g, int(elem_size), nthreads, workspace_bytes, bias);
}

}  // namespace

void register_winograd(py::module_& m) {
    m.def("winograd_weights_shape", &u_shape, py::arg("K"), py::arg("C"), py::arg("groups"), py::arg("m"),
          "Shape of the transformed weights U for winograd_transform_weights / winograd_conv: "
          "(groups, (m+2)**2, K/groups rounded up to 32, C/groups).");
    m.def("winograd_transform_weights", &transform_weights, py::arg("w"), py::arg("U"), py::arg("G"),
          py::arg("groups"), py::arg("threads") = 1,
          "U = G w G^T per (k, c), computed in float64, packed for this process's GEMM micro-kernel. w (K, C/groups, "
          "1, 3, 3); U preallocated, dtype of w, shape winograd_weights_shape(K, C, groups, m); G (m+2, 3) float64 "
          "from cnnkernels.winograd.transforms(m)[1].");
    m.def("winograd_conv", &conv, py::arg("x"), py::arg("U"), py::arg("bias"), py::arg("y"), py::arg("pad"),
          py::arg("AT"), py::arg("BT"), py::arg("threads"), py::arg("workspace_bytes"),
          py::arg("act_min") = -std::numeric_limits<double>::infinity(),
          py::arg("act_max") = std::numeric_limits<double>::infinity(), py::arg("block_bytes") = 0,
          "Winograd F(m x m, 3 x 3) convolution, stride 1, dilation 1, into preallocated y (N, K, 1, OH, OW) from x "
          "(N, C, 1, H, W) and U (winograd_transform_weights); pad = (0, top, left); AT (m, m+2), BT (m+2, m+2) "
          "float64 from cnnkernels.winograd.transforms(m); groups = U.shape[0]; outputs clamped to "
          "[act_min, act_max], NaN stays NaN. Returns False when a transformed input tile held a NaN or an "
          "infinity (a tile mixes its inputs, so y may be NaN where the convolution is not), or an output before the "
          "clamp was not finite (an overflow of finite inputs): compute y another way. "
          "block_bytes: V + M bytes of a tile block per thread (a tuning variant; 0: the default, 1.5 MiB).");
    m.def("winograd_workspace_bytes", &workspace_bytes, py::arg("N"), py::arg("C"), py::arg("K"), py::arg("groups"),
          py::arg("OH"), py::arg("OW"), py::arg("m"), py::arg("elem_size"), py::arg("threads"),
          py::arg("workspace_bytes"), py::arg("bias"),
          "Bytes of scratch winograd_conv allocates for this call: at most workspace_bytes, unless one tile per "
          "block does not fit (then that floor).");
}
