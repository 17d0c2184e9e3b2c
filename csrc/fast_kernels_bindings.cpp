// Bindings for the fast pooling and depthwise kernels (issue 6): check buffers with checks.h, release the GIL, call src/.
#include <limits>

#include "checks.h"
#include "cnnkernels/depthwise.h"
#include "cnnkernels/pointwise.h"
#include "cnnkernels/pool.h"

namespace py = pybind11;
namespace ck = cnnkernels;
using namespace cnnkernels_py;

namespace {

struct NdhwcPool {
    py::array x, y, indices;
    bool has_indices = false;
    Dtype dt = Dtype::f32;
    ck::PoolGeometry g{};
    i64 C = 0;
};

// x (N, D, H, W, C), y / indices (N, OD, OH, OW, C).
NdhwcPool ndhwc_pool_arrays(py::handle x_, py::handle y_, py::handle indices_) {
    NdhwcPool p;
    p.x = as_array(x_, "x");
    p.y = as_array(y_, "y");
    check_layout(p.x, "x", 5, false);
    check_layout(p.y, "y", 5, true);
    p.dt = float_dtype(p.x, "x");
    check_same_dtype(p.y, "y", p.dt, "x");
    if (p.y.shape(0) != p.x.shape(0) || p.y.shape(4) != p.x.shape(4))
        throw py::value_error("y must have x's batch and channel sizes (N, ..., C): x " + shape_str(p.x) + ", y " +
                              shape_str(p.y));
    check_no_overlap(p.y, "y", p.x, "x");
    if (indices_ && !indices_.is_none()) {
        p.has_indices = true;
        p.indices = as_array(indices_, "indices");
        check_layout(p.indices, "indices", 5, true);
        check_int64(p.indices, "indices");
        for (int d = 0; d < 5; ++d)
            if (p.indices.shape(d) != p.y.shape(d))
                throw py::value_error("indices must have the shape of y " + shape_str(p.y) + ", got " +
                                      shape_str(p.indices));
        check_no_overlap(p.indices, "indices", p.x, "x");
        check_no_overlap(p.indices, "indices", p.y, "y");
    }
    p.g.planes = p.x.shape(0);
    p.C = p.x.shape(4);
    for (int d = 0; d < 3; ++d) {
        p.g.in[d] = p.x.shape(1 + d);
        p.g.out[d] = p.y.shape(1 + d);
        p.g.kernel[d] = p.g.stride[d] = p.g.dilation[d] = 1;
    }
    return p;
}

void max_pool_ndhwc(py::object x_, py::object y_, py::object indices_, py::object kernel_, py::object stride_,
                    py::object pad_before_, py::object dilation_, i64 threads) {
    NdhwcPool p = ndhwc_pool_arrays(x_, y_, indices_);
    set_max_window(p.g, kernel_, stride_, pad_before_, dilation_);
    const int nthreads = check_threads(threads);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    int64_t* ip = p.has_indices ? static_cast<int64_t*>(p.indices.mutable_data()) : nullptr;
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::max_pool_ndhwc<float>(p.g, p.C, static_cast<const float*>(xp), static_cast<float*>(yp), ip, nthreads);
    else
        ck::max_pool_ndhwc<double>(p.g, p.C, static_cast<const double*>(xp), static_cast<double*>(yp), ip, nthreads);
}

void avg_pool_ndhwc(py::object x_, py::object y_, py::object kernel_, py::object stride_, py::object pad_before_,
                    py::object pad_after_, bool count_include_pad, i64 divisor_override, i64 threads) {
    NdhwcPool p = ndhwc_pool_arrays(x_, y_, py::none());
    set_avg_window(p.g, kernel_, stride_, pad_before_, pad_after_);
    const int nthreads = check_threads(threads);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::avg_pool_ndhwc<float>(p.g, p.C, count_include_pad, divisor_override, static_cast<const float*>(xp),
                                  static_cast<float*>(yp), nthreads);
    else
        ck::avg_pool_ndhwc<double>(p.g, p.C, count_include_pad, divisor_override, static_cast<const double*>(xp),
                                   static_cast<double*>(yp), nthreads);
}

void adaptive_avg_pool_ndhwc(py::object x_, py::object y_, i64 threads) {
    NdhwcPool p = ndhwc_pool_arrays(x_, y_, py::none());
    const int nthreads = check_threads(threads);
    check_adaptive(p.g);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::adaptive_avg_pool_ndhwc<float>(p.g.planes, p.g.in, p.g.out, p.C, static_cast<const float*>(xp),
                                           static_cast<float*>(yp), nthreads);
    else
        ck::adaptive_avg_pool_ndhwc<double>(p.g.planes, p.g.in, p.g.out, p.C, static_cast<const double*>(xp),
                                            static_cast<double*>(yp), nthreads);
}

// channels_last: x (N, D, H, W, C), y (N, OD, OH, OW, K); else x (N, C, D, H, W), y (N, K, OD, OH, OW).
// w (K, 1, KD, KH, KW); bias None or (K,) or (0,).
void depthwise(bool channels_last, py::object x_, py::object w_, py::object bias_, py::object y_, py::object stride_,
               py::object pad_, py::object dilation_, i64 threads, double act_min, double act_max) {
    py::array x = as_array(x_, "x"), w = as_array(w_, "w"), y = as_array(y_, "y");
    const Dtype dt = check_xwy(x, w, "w", 5, y);
    const py::array bias = optional_bias(bias_, dt, w.shape(0));
    const bool has_bias = bias.size() != 0;
    const int cx = channels_last ? 4 : 1, sp = channels_last ? 1 : 2;
    ck::ConvGeometry g{};
    g.N = x.shape(0);
    g.C = x.shape(cx);
    g.K = w.shape(0);
    g.groups = g.C;
    if (g.C < 1) throw py::value_error("x must have at least one channel, got shape " + shape_str(x));
    if (w.shape(1) != 1)
        throw py::value_error("w must have shape (K, 1, KD, KH, KW) for a depthwise convolution, got " + shape_str(w));
    if (g.K % g.C != 0)
        throw py::value_error("w.shape[0] (K = " + std::to_string(g.K) + ") must be a multiple of the channel count C = " +
                              std::to_string(g.C));
    if (y.shape(0) != g.N || y.shape(cx) != g.K)
        throw py::value_error(std::string("y must have shape ") + (channels_last ? "(N, OD, OH, OW, K)" : "(N, K, OD, OH, OW)") +
                              " with N = " + std::to_string(g.N) + ", K = " + std::to_string(g.K) + ", got " + shape_str(y));
    const Triple stride = get3(stride_, "stride"), pad = get3(pad_, "pad"), dilation = get3(dilation_, "dilation");
    check_min(stride, 1, "stride");
    check_min(pad, 0, "pad");
    check_min(dilation, 1, "dilation");
    const int nthreads = check_threads(threads);
    for (int d = 0; d < 3; ++d) {
        g.in[d] = x.shape(sp + d);
        g.out[d] = y.shape(sp + d);
        g.kernel[d] = w.shape(2 + d);
        g.stride[d] = stride[d];
        g.pad[d] = pad[d];
        g.dilation[d] = dilation[d];
        if (g.kernel[d] < 1) throw py::value_error("w kernel sizes must be >= 1, got shape " + shape_str(w));
        check_index_range((__int128)g.out[d] * stride[d] + (__int128)g.kernel[d] * dilation[d] + pad[d] + g.in[d],
                          "depthwise geometry");
    }
    check_no_overlap(y, "y", x, "x");
    check_no_overlap(y, "y", w, "w");
    if (has_bias) check_no_overlap(y, "y", bias, "bias");
    const void* xp = x.data();
    const void* wp = w.data();
    const void* bp = has_bias ? bias.data() : nullptr;
    void* yp = y.mutable_data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32) {
        auto fn = channels_last ? &ck::depthwise_ndhwc<float> : &ck::depthwise_ncdhw<float>;
        fn(g, static_cast<const float*>(xp), static_cast<const float*>(wp), static_cast<const float*>(bp),
           static_cast<float*>(yp), float(act_min), float(act_max), nthreads);
    } else {
        auto fn = channels_last ? &ck::depthwise_ndhwc<double> : &ck::depthwise_ncdhw<double>;
        fn(g, static_cast<const double*>(xp), static_cast<const double*>(wp), static_cast<const double*>(bp),
           static_cast<double*>(yp), act_min, act_max, nthreads);
    }
}

// x (N, D, H, W, C), w (K, C) (PyTorch's 1x1 weights as a matrix), bias None / (0,) / (K,), y (N, D, H, W, K).
void pointwise_ndhwc(py::object x_, py::object w_, py::object bias_, py::object y_, i64 threads, i64 workspace_bytes,
                     double act_min, double act_max) {
    py::array x = as_array(x_, "x"), w = as_array(w_, "w"), y = as_array(y_, "y");
    const Dtype dt = check_xwy(x, w, "w", 2, y);
    const i64 C = x.shape(4), K = w.shape(0);
    if (w.shape(1) != C)
        throw py::value_error("w must have shape (K, C) with C = " + std::to_string(C) + " (x's channels), got " +
                              shape_str(w));
    for (int d = 0; d < 4; ++d)
        if (y.shape(d) != x.shape(d))
            throw py::value_error("y must have shape (N, D, H, W, K) with x's N, D, H, W: x " + shape_str(x) + ", y " +
                                  shape_str(y));
    if (y.shape(4) != K)
        throw py::value_error("y must have K = " + std::to_string(K) + " channels (w's rows), got " + shape_str(y));
    const py::array bias = optional_bias(bias_, dt, K);
    const bool has_bias = bias.size() != 0;
    const int nthreads = check_threads(threads);
    check_workspace_bytes(workspace_bytes);
    check_act_range(act_min, act_max);
    const i64 P = x.shape(0) * x.shape(1) * x.shape(2) * x.shape(3);
    check_index_range((__int128)P * (C + K) + (__int128)C * K, "pointwise geometry");
    check_no_overlap(y, "y", x, "x");
    check_no_overlap(y, "y", w, "w");
    if (has_bias) check_no_overlap(y, "y", bias, "bias");
    const bool clamp = clamps(act_min, act_max);
    const void* xp = x.data();
    const void* wp = w.data();
    const void* bp = has_bias ? bias.data() : nullptr;
    void* yp = y.mutable_data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        ck::pointwise_ndhwc<float>(P, C, K, static_cast<const float*>(xp), static_cast<const float*>(wp),
                                   static_cast<const float*>(bp), static_cast<float*>(yp), clamp, float(act_min),
                                   float(act_max), nthreads, workspace_bytes);
    else
        ck::pointwise_ndhwc<double>(P, C, K, static_cast<const double*>(xp), static_cast<const double*>(wp),
                                    static_cast<const double*>(bp), static_cast<double*>(yp), clamp, act_min, act_max,
                                    nthreads, workspace_bytes);
}

}  // namespace

void register_fast_kernels(py::module_& m) {
    const double inf = std::numeric_limits<double>::infinity();
    m.def("max_pool_ndhwc", &max_pool_ndhwc, py::arg("x"), py::arg("y"), py::arg("indices"), py::arg("kernel"),
          py::arg("stride"), py::arg("pad_before"), py::arg("dilation"), py::arg("threads"),
          "Channels-last max pooling: x (N, D, H, W, C) -> y (N, OD, OH, OW, C); indices (int64, shape of y) or None.");
    m.def("avg_pool_ndhwc", &avg_pool_ndhwc, py::arg("x"), py::arg("y"), py::arg("kernel"), py::arg("stride"),
          py::arg("pad_before"), py::arg("pad_after"), py::arg("count_include_pad"), py::arg("divisor_override"),
          py::arg("threads"), "Channels-last average pooling; divisor_override 0 means none.");
    m.def("adaptive_avg_pool_ndhwc", &adaptive_avg_pool_ndhwc, py::arg("x"), py::arg("y"), py::arg("threads"),
          "Channels-last adaptive average pooling to y's spatial shape.");
    m.def(
        "depthwise_ncdhw",
        [](py::object x, py::object w, py::object bias, py::object y, py::object stride, py::object pad,
           py::object dilation, i64 threads, double act_min, double act_max) {
            depthwise(false, x, w, bias, y, stride, pad, dilation, threads, act_min, act_max);
        },
        py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"), py::arg("stride"), py::arg("pad"),
        py::arg("dilation"), py::arg("threads"), py::arg("act_min") = -inf, py::arg("act_max") = inf,
        "Depthwise convolution: x (N, C, D, H, W), w (K, 1, KD, KH, KW), K = C * multiplier, bias (K,) / (0,) / None, "
        "y (N, K, OD, OH, OW) = clamp(conv + bias, act_min, act_max).");
    m.def(
        "depthwise_ndhwc",
        [](py::object x, py::object w, py::object bias, py::object y, py::object stride, py::object pad,
           py::object dilation, i64 threads, double act_min, double act_max) {
            depthwise(true, x, w, bias, y, stride, pad, dilation, threads, act_min, act_max);
        },
        py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"), py::arg("stride"), py::arg("pad"),
        py::arg("dilation"), py::arg("threads"), py::arg("act_min") = -inf, py::arg("act_max") = inf,
        "Channels-last depthwise convolution: x (N, D, H, W, C), y (N, OD, OH, OW, K); otherwise as depthwise_ncdhw.");
    m.def("pointwise_ndhwc", &pointwise_ndhwc, py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"),
          py::arg("threads"), py::arg("workspace_bytes"), py::arg("act_min") = -inf, py::arg("act_max") = inf,
          "Channels-last 1x1 convolution (stride 1, no padding, groups 1): y (N, D, H, W, K) = clamp(x (N, D, H, W, C) "
          "@ w (K, C)^T + bias, act_min, act_max).");
}
