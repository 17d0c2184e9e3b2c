// Buffer and argument checks shared by the binding files: every check that protects a
// kernel's preconditions lives here, so each binding re-validates what Python sends.
#pragma once
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <string>

#include "cnnkernels/geometry.h"

namespace cnnkernels_py {

namespace py = pybind11;
using i64 = int64_t;
using Triple = std::array<i64, 3>;


// Thread counts above this are almost certainly a bug (each one a kernel thread that lives as long as
// the process).
constexpr i64 kMaxThreads = 256;
// Index arithmetic in the kernels stays far below this, so it cannot overflow.
constexpr __int128 kIndexLimit = (__int128)1 << 62;

enum class Dtype { f32, f64 };

inline std::string type_name(py::handle h) { return Py_TYPE(h.ptr())->tp_name; }

inline std::string shape_str(const py::array& a) {
    std::string s = "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) s += (i ? ", " : "") + std::to_string(a.shape(i));
    return s + (a.ndim() == 1 ? ",)" : ")");
}

inline py::array as_array(py::handle h, const char* name) {
    // No conversion: a converted copy of an output would silently drop results,
    // and a copy of an input would hide a costly mistake in the caller.
    if (!py::isinstance<py::array>(h))
        throw py::type_error(std::string(name) + " must be a numpy.ndarray, got " + type_name(h));
    return py::reinterpret_borrow<py::array>(h);
}

inline void check_layout(const py::array& a, const char* name, py::ssize_t ndim, bool writeable) {
    if (a.ndim() != ndim)
        throw py::value_error(std::string(name) + " must be " + std::to_string(ndim) + "-D, got " +
                              std::to_string(a.ndim()) + "-D array of shape " + shape_str(a));
    using api = py::detail::npy_api;
    if (!(a.flags() & api::NPY_ARRAY_C_CONTIGUOUS_))
        throw py::value_error(std::string(name) + " must be C-contiguous");
    if (!(a.flags() & api::NPY_ARRAY_ALIGNED_))
        throw py::value_error(std::string(name) + " must be aligned");
    if (writeable && !a.writeable()) throw py::value_error(std::string(name) + " must be writeable");
}

inline Dtype float_dtype(const py::array& a, const char* name) {
    if (py::isinstance<py::array_t<float>>(a)) return Dtype::f32;
    if (py::isinstance<py::array_t<double>>(a)) return Dtype::f64;
    throw py::type_error(std::string(name) + " must have dtype float32 or float64 (native byte order), got " +
                         std::string(py::str(a.dtype())));
}

inline void check_same_dtype(const py::array& a, const char* name, Dtype expected, const char* ref) {
    if (float_dtype(a, name) != expected)
        throw py::type_error(std::string(name) + " must have the same dtype as " + ref + " (" +
                             (expected == Dtype::f32 ? "float32" : "float64") + "), got " +
                             std::string(py::str(a.dtype())));
}

// x and y 5-D, w w_ndim-D, all C-contiguous (y writeable) and of one float dtype, which is returned.
inline Dtype check_xwy(const py::array& x, const py::array& w, const char* w_name, py::ssize_t w_ndim,
                       const py::array& y) {
    check_layout(x, "x", 5, false);
    check_layout(w, w_name, w_ndim, false);
    check_layout(y, "y", 5, true);
    const Dtype dt = float_dtype(x, "x");
    check_same_dtype(w, w_name, dt, "x");
    check_same_dtype(y, "y", dt, "x");
    return dt;
}

// A bias given as None or (0,) (none: returns an empty array) or (K,), 1-D C-contiguous of dtype dt.
inline py::array optional_bias(py::handle bias_, Dtype dt, i64 K) {
    if (!bias_ || bias_.is_none()) return py::array();
    py::array bias = as_array(bias_, "bias");
    check_layout(bias, "bias", 1, false);
    check_same_dtype(bias, "bias", dt, "x");
    if (bias.shape(0) != 0 && bias.shape(0) != K)
        throw py::value_error("bias must have shape (K,) = (" + std::to_string(K) + ",) or (0,), got " +
                              shape_str(bias));
    return bias;
}

// act_min <= act_max; NaN bounds are refused too (the comparison is false).
inline void check_act_range(double act_min, double act_max) {
    if (!(act_min <= act_max))
        throw py::value_error("need act_min <= act_max, got act_min=" + std::string(py::str(py::float_(act_min))) +
                              ", act_max=" + std::string(py::str(py::float_(act_max))));
}

// Whether [act_min, act_max] clamps anything (it is not (-inf, inf)).
inline bool clamps(double act_min, double act_max) {
    return !(std::isinf(act_min) && act_min < 0 && std::isinf(act_max) && act_max > 0);
}

inline void check_int64(const py::array& a, const char* name) {
    if (!py::isinstance<py::array_t<int64_t>>(a))
        throw py::type_error(std::string(name) + " must have dtype int64, got " + std::string(py::str(a.dtype())));
}

// Outputs that alias an input (or each other) would give garbage: reject them.
inline void check_no_overlap(const py::array& out, const char* out_name, const py::array& other, const char* other_name) {
    if (out.nbytes() == 0 || other.nbytes() == 0) return;
    auto a0 = reinterpret_cast<uintptr_t>(out.data()), a1 = a0 + uintptr_t(out.nbytes());
    auto b0 = reinterpret_cast<uintptr_t>(other.data()), b1 = b0 + uintptr_t(other.nbytes());
    if (a0 < b1 && b0 < a1)
        throw py::value_error(std::string(out_name) + " must not share memory with " + other_name);
}

inline Triple get3(py::handle h, const char* name) {
    if (py::isinstance<py::str>(h) || py::isinstance<py::bytes>(h) || !PySequence_Check(h.ptr()))
        throw py::type_error(std::string(name) + " must be a sequence of 3 ints, got " + type_name(h));
    auto seq = py::reinterpret_borrow<py::sequence>(h);
    if (seq.size() != 3)
        throw py::value_error(std::string(name) + " must have exactly 3 entries, got " + std::to_string(seq.size()));
    Triple v{};
    for (size_t i = 0; i < 3; ++i) {
        py::object item = seq[i];
        if (PyBool_Check(item.ptr()) || !PyIndex_Check(item.ptr()))
            throw py::type_error(std::string(name) + " entries must be ints, got " + type_name(item));
        py::object idx = py::reinterpret_steal<py::object>(PyNumber_Index(item.ptr()));
        if (!idx) throw py::error_already_set();
        int overflow = 0;
        long long x = PyLong_AsLongLongAndOverflow(idx.ptr(), &overflow);
        if (overflow || (x == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            throw py::value_error(std::string(name) + " entries must fit in int64");
        }
        v[i] = i64(x);
    }
    return v;
}

inline void check_min(const Triple& v, i64 lo, const char* name) {
    for (i64 x : v)
        if (x < lo)
            throw py::value_error(std::string(name) + " entries must be >= " + std::to_string(lo) + ", got " +
                                  std::to_string(x));
}

inline int check_threads(i64 threads) {
    if (threads < 1 || threads > kMaxThreads)
        throw py::value_error("threads must be in [1, " + std::to_string(kMaxThreads) + "], got " +
                              std::to_string(threads));
    return int(threads);
}

inline void check_index_range(__int128 v, const char* what) {
    if (v >= kIndexLimit) throw py::value_error(std::string(what) + " too large: index arithmetic would overflow");
}

// Sliding-window pooling arguments, validated, into g (whose in/out are already set).
inline void set_max_window(cnnkernels::PoolGeometry& g, py::handle kernel_, py::handle stride_, py::handle pad_before_,
                           py::handle dilation_) {
    const Triple kernel = get3(kernel_, "kernel"), stride = get3(stride_, "stride");
    const Triple pad_before = get3(pad_before_, "pad_before"), dilation = get3(dilation_, "dilation");
    check_min(kernel, 1, "kernel");
    check_min(stride, 1, "stride");
    check_min(pad_before, 0, "pad_before");
    check_min(dilation, 1, "dilation");
    for (int d = 0; d < 3; ++d) {
        g.kernel[d] = kernel[d];
        g.stride[d] = stride[d];
        g.pad_before[d] = pad_before[d];
        g.dilation[d] = dilation[d];
        check_index_range((__int128)g.out[d] * stride[d] + (__int128)kernel[d] * dilation[d] + pad_before[d] + g.in[d],
                          "pooling geometry");
    }
}

inline void set_avg_window(cnnkernels::PoolGeometry& g, py::handle kernel_, py::handle stride_, py::handle pad_before_,
                           py::handle pad_after_) {
    const Triple kernel = get3(kernel_, "kernel"), stride = get3(stride_, "stride");
    const Triple pad_before = get3(pad_before_, "pad_before"), pad_after = get3(pad_after_, "pad_after");
    check_min(kernel, 1, "kernel");
    check_min(stride, 1, "stride");
    check_min(pad_before, 0, "pad_before");
    check_min(pad_after, 0, "pad_after");
    for (int d = 0; d < 3; ++d) {
        g.kernel[d] = kernel[d];
        g.stride[d] = stride[d];
        g.pad_before[d] = pad_before[d];
        g.pad_after[d] = pad_after[d];
        check_index_range((__int128)g.out[d] * stride[d] + kernel[d] + pad_before[d] + pad_after[d] + g.in[d],
                          "pooling geometry");
    }
}

inline void check_adaptive(const cnnkernels::PoolGeometry& g) {
    for (int d = 0; d < 3; ++d)
        check_index_range(((__int128)g.out[d] + 1) * g.in[d] + g.out[d], "adaptive pooling geometry");
}

// The arrays and geometry of a convolution call y = clamp(conv(x, w) + bias), all checked: 5-D
// C-contiguous x, w, y (y writeable) and optional 1-D bias of one float dtype, shapes that agree,
inline void check_workspace_bytes(i64 workspace_bytes) {
    if (workspace_bytes < 1) throw py::value_error("workspace_bytes must be >= 1, got " + std::to_string(workspace_bytes));
}

// The per-dimension fields of g from sizes and the stride/pad/dilation arguments (checked: stride and
// dilation >= 1, pad >= 0), refusing index arithmetic that could overflow.
inline void set_conv_dims(cnnkernels::ConvGeometry& g, const Triple& in, const Triple& out, const Triple& kernel,
                          py::handle stride_, py::handle pad_, py::handle dilation_) {
    const Triple stride = get3(stride_, "stride"), pad = get3(pad_, "pad"), dilation = get3(dilation_, "dilation");
    check_min(stride, 1, "stride");
    check_min(pad, 0, "pad");
    check_min(dilation, 1, "dilation");
    for (int d = 0; d < 3; ++d) {
        g.in[d] = in[d];
        g.out[d] = out[d];
        g.kernel[d] = kernel[d];
        g.stride[d] = stride[d];
        g.pad[d] = pad[d];
        g.dilation[d] = dilation[d];
        check_index_range((__int128)g.out[d] * g.stride[d] + (__int128)g.kernel[d] * g.dilation[d] + g.pad[d] + g.in[d],
                          "convolution geometry");
    }
}

// stride/dilation >= 1, pad >= 0, groups dividing both channel counts, a valid thread count and
// workspace, act_min <= act_max (NaN refused), every index in range, y overlapping no input.
struct ConvCall {
    py::array x, w, y, bias;
    bool has_bias = false;
    Dtype dt = Dtype::f32;
    cnnkernels::ConvGeometry g{};
    int threads = 1;
};

inline ConvCall check_conv_call(py::handle x_, py::handle w_, py::handle bias_, py::handle y_, py::handle stride_,
                                py::handle pad_, py::handle dilation_, i64 groups, i64 threads, i64 workspace_bytes,
                                double act_min, double act_max) {
    ConvCall c;
    c.x = as_array(x_, "x");
    c.w = as_array(w_, "w");
    c.y = as_array(y_, "y");
    c.dt = check_xwy(c.x, c.w, "w", 5, c.y);
    c.has_bias = !bias_.is_none();
    if (c.has_bias) {
        c.bias = as_array(bias_, "bias");
        check_layout(c.bias, "bias", 1, false);
        check_same_dtype(c.bias, "bias", c.dt, "x");
    }
    if (groups < 1) throw py::value_error("groups must be >= 1, got " + std::to_string(groups));
    c.threads = check_threads(threads);
    check_workspace_bytes(workspace_bytes);
    check_act_range(act_min, act_max);
    cnnkernels::ConvGeometry& g = c.g;
    g.N = c.x.shape(0);
    g.C = c.x.shape(1);
    g.K = c.w.shape(0);
    g.groups = groups;
    if (g.K % groups != 0)
        throw py::value_error("w.shape[0] (" + std::to_string(g.K) + ") must be divisible by groups (" +
                              std::to_string(groups) + ")");
    if ((__int128)c.w.shape(1) * groups != g.C)
        throw py::value_error("w.shape[1] * groups must equal x.shape[1]: w " + shape_str(c.w) + ", x " +
                              shape_str(c.x) + ", groups " + std::to_string(groups));
    if (c.y.shape(0) != g.N || c.y.shape(1) != g.K)
        throw py::value_error("y.shape[:2] must be (x.shape[0], w.shape[0]) = (" + std::to_string(g.N) + ", " +
                              std::to_string(g.K) + "), got y " + shape_str(c.y));
    if (c.has_bias && c.bias.shape(0) != g.K)
        throw py::value_error("bias must have shape (" + std::to_string(g.K) + ",), got " + shape_str(c.bias));
    set_conv_dims(g, {c.x.shape(2), c.x.shape(3), c.x.shape(4)}, {c.y.shape(2), c.y.shape(3), c.y.shape(4)},
                  {c.w.shape(2), c.w.shape(3), c.w.shape(4)}, stride_, pad_, dilation_);
    check_no_overlap(c.y, "y", c.x, "x");
    check_no_overlap(c.y, "y", c.w, "w");
    if (c.has_bias) check_no_overlap(c.y, "y", c.bias, "bias");
    return c;
}

}  // namespace cnnkernels_py
