// Python bindings for the cnnkernels C++ library. Only argument validation and
// dispatch live here: every check that protects the kernels' preconditions is
// repeated so that no call from Python can crash the process.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>


#include "cnnkernels/conv_direct.h"
#include "cnnkernels/geometry.h"
#include "cnnkernels/igemm.h"
#include "cnnkernels/im2col.h"
#include "cnnkernels/elementwise.h"
#include "cnnkernels/transpose.h"
#include "cnnkernels/isa.h"
#include "cnnkernels/parallel_probe.h"
#include "cnnkernels/thread_pool.h"
#include "cnnkernels/pool.h"
#include "cnnkernels/scratch.h"
#include "checks.h"

namespace py = pybind11;
namespace ck = cnnkernels;
using i64 = int64_t;
using Triple = std::array<i64, 3>;

using namespace cnnkernels_py;

// Kernel families bound in their own files (each defines its register function).
void register_winograd(py::module_& m);
void register_fast_kernels(py::module_& m);
void register_igemm(py::module_& m);

namespace {

// ------------------------------------------------------------------ conv

void conv(const std::string& algorithm, py::object x_, py::object w_, py::object bias_, py::object y_,
          py::object stride_, py::object pad_, py::object dilation_, i64 groups, i64 threads,
          i64 workspace_bytes, double act_min, double act_max) {
    const bool direct = algorithm == "direct";
    if (!direct && algorithm != "im2col")
        throw py::value_error("algorithm must be 'direct' or 'im2col', got '" + algorithm + "'");
    ConvCall c = check_conv_call(x_, w_, bias_, y_, stride_, pad_, dilation_, groups, threads, workspace_bytes,
                                       act_min, act_max);
    const ck::ConvGeometry& g = c.g;
    const int nthreads = c.threads;
    const Dtype dt = c.dt;
    const void* xp = c.x.data();
    const void* wp = c.w.data();
    const void* bp = c.has_bias ? c.bias.data() : nullptr;
    void* yp = c.y.mutable_data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32) {
        auto X = static_cast<const float*>(xp), Wt = static_cast<const float*>(wp), B = static_cast<const float*>(bp);
        auto Y = static_cast<float*>(yp);
        if (direct) ck::conv_direct<float>(g, X, Wt, B, Y, nthreads, act_min, act_max);
        else ck::conv_im2col<float>(g, X, Wt, B, Y, nthreads, workspace_bytes, act_min, act_max);
    } else {
        auto X = static_cast<const double*>(xp), Wt = static_cast<const double*>(wp), B = static_cast<const double*>(bp);
        auto Y = static_cast<double*>(yp);
        if (direct) ck::conv_direct<double>(g, X, Wt, B, Y, nthreads, act_min, act_max);
        else ck::conv_im2col<double>(g, X, Wt, B, Y, nthreads, workspace_bytes, act_min, act_max);
    }
}

// Scratch bytes conv_im2col / conv_igemm would allocate for a geometry (the
// registry refuses a kernel whose floor, asked with workspace_bytes = 1, is
// over the configured limit).
i64 conv_workspace_bytes(const std::string& algorithm, i64 N, i64 C, i64 K, i64 groups, py::handle in_,
                         py::handle out_, py::handle kernel_, py::handle stride_, py::handle pad_,
                         py::handle dilation_, i64 elem_size, i64 threads, i64 workspace_bytes) {
    const bool igemm = algorithm == "igemm";
    if (!igemm && algorithm != "im2col")
        throw py::value_error("algorithm must be 'im2col' or 'igemm', got '" + algorithm + "'");
    if (elem_size != 4 && elem_size != 8)
        throw py::value_error("elem_size must be 4 or 8, got " + std::to_string(elem_size));
    if (N < 0 || C < 0 || K < 0) throw py::value_error("N, C and K must be >= 0");
    if (groups < 1 || C % groups || K % groups)
        throw py::value_error("groups must be >= 1 and divide C and K, got " + std::to_string(groups));
    const int nthreads = check_threads(threads);
    check_workspace_bytes(workspace_bytes);
    const Triple in = get3(in_, "in"), out = get3(out_, "out"), kernel = get3(kernel_, "kernel");
    check_min(in, 0, "in");
    check_min(out, 0, "out");
    check_min(kernel, 1, "kernel");
    ck::ConvGeometry g{};
    g.N = N;
    g.C = C;
    g.K = K;
    g.groups = groups;
    set_conv_dims(g, in, out, kernel, stride_, pad_, dilation_);
    check_index_range((__int128)(N + 1) * (C + K + 1) * (out[0] + in[0] + 1) * (out[1] + in[1] + 1) *
                          (out[2] + in[2] + 1) * kernel[0] * kernel[1] * kernel[2], "convolution size");
    return igemm ? ck::igemm_workspace_bytes(g, int(elem_size), nthreads, workspace_bytes)
                 : ck::im2col_workspace_bytes(g, int(elem_size), nthreads, workspace_bytes);
}

// ------------------------------------------------------------------ pooling

struct PoolArrays {
    py::array x, y, indices;
    bool has_indices = false;
    Dtype dt = Dtype::f32;
};

PoolArrays pool_arrays(py::handle x_, py::handle y_, py::handle indices_) {
    PoolArrays p;
    p.x = as_array(x_, "x");
    p.y = as_array(y_, "y");
    check_layout(p.x, "x", 5, false);
    check_layout(p.y, "y", 5, true);
    p.dt = float_dtype(p.x, "x");
    check_same_dtype(p.y, "y", p.dt, "x");
    if (p.y.shape(0) != p.x.shape(0) || p.y.shape(1) != p.x.shape(1))
        throw py::value_error("y.shape[:2] must equal x.shape[:2]: x " + shape_str(p.x) + ", y " + shape_str(p.y));
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
    return p;
}

ck::PoolGeometry pool_geometry(const PoolArrays& p) {
    ck::PoolGeometry g{};
    g.planes = p.x.shape(0) * p.x.shape(1);
    for (int d = 0; d < 3; ++d) {
        g.in[d] = p.x.shape(2 + d);
        g.out[d] = p.y.shape(2 + d);
        g.kernel[d] = g.stride[d] = g.dilation[d] = 1;
    }
    return g;
}

void max_pool(py::object x_, py::object y_, py::object indices_, py::object kernel_, py::object stride_,
              py::object pad_before_, py::object dilation_, i64 threads) {
    PoolArrays p = pool_arrays(x_, y_, indices_);
    ck::PoolGeometry g = pool_geometry(p);
    set_max_window(g, kernel_, stride_, pad_before_, dilation_);
    const int nthreads = check_threads(threads);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    int64_t* ip = p.has_indices ? static_cast<int64_t*>(p.indices.mutable_data()) : nullptr;
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32) ck::max_pool<float>(g, static_cast<const float*>(xp), static_cast<float*>(yp), ip, nthreads);
    else ck::max_pool<double>(g, static_cast<const double*>(xp), static_cast<double*>(yp), ip, nthreads);
}

void avg_pool(py::object x_, py::object y_, py::object kernel_, py::object stride_, py::object pad_before_,
              py::object pad_after_, bool count_include_pad, i64 divisor_override, i64 threads) {
    PoolArrays p = pool_arrays(x_, y_, py::none());
    ck::PoolGeometry g = pool_geometry(p);
    set_avg_window(g, kernel_, stride_, pad_before_, pad_after_);
    const int nthreads = check_threads(threads);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::avg_pool<float>(g, count_include_pad, divisor_override, static_cast<const float*>(xp),
                            static_cast<float*>(yp), nthreads);
    else
        ck::avg_pool<double>(g, count_include_pad, divisor_override, static_cast<const double*>(xp),
                             static_cast<double*>(yp), nthreads);
}

void adaptive_avg_pool(py::object x_, py::object y_, i64 threads) {
    PoolArrays p = pool_arrays(x_, y_, py::none());
    const int nthreads = check_threads(threads);
    const ck::PoolGeometry g = pool_geometry(p);
    check_adaptive(g);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::adaptive_avg_pool<float>(g.planes, g.in, g.out, static_cast<const float*>(xp), static_cast<float*>(yp), nthreads);
    else
        ck::adaptive_avg_pool<double>(g.planes, g.in, g.out, static_cast<const double*>(xp), static_cast<double*>(yp),
                                      nthreads);
}

void adaptive_max_pool(py::object x_, py::object y_, py::object indices_, i64 threads) {
    PoolArrays p = pool_arrays(x_, y_, indices_);
    const int nthreads = check_threads(threads);
    const ck::PoolGeometry g = pool_geometry(p);
    check_adaptive(g);
    const void* xp = p.x.data();
    void* yp = p.y.mutable_data();
    int64_t* ip = p.has_indices ? static_cast<int64_t*>(p.indices.mutable_data()) : nullptr;
    py::gil_scoped_release nogil;
    if (p.dt == Dtype::f32)
        ck::adaptive_max_pool<float>(g.planes, g.in, g.out, static_cast<const float*>(xp), static_cast<float*>(yp), ip,
                                     nthreads);
    else
        ck::adaptive_max_pool<double>(g.planes, g.in, g.out, static_cast<const double*>(xp), static_cast<double*>(yp), ip,
                                      nthreads);
}

py::dict info() {
    py::dict d;
#ifdef __VERSION__
    d["compiler"] = std::string(__VERSION__);
#else
    d["compiler"] = std::string("unknown");
#endif
    d["threads"] = std::string("cnnkernels pool (src/cnnkernels/thread_pool.h)");
    // Kernels are compiled for every ISA and chosen at run time (isa.h).
    const ck::IsaKernels& k = ck::active_isa_kernels();
    d["isa"] = std::string(k.isa);
    py::list avail;
    for (const std::string& name : ck::available_isas()) avail.append(name);
    d["isa_available"] = avail;
    d["isa_requested"] = ck::requested_isa();
    d["gemm_kernel_f32"] = std::string(k.f32.name);
    d["gemm_kernel_f64"] = std::string(k.f64.name);
    d["max_threads_argument"] = kMaxThreads;
    return d;
}

void swap_last_axes(py::object src_, py::object dst_, i64 threads_) {
    py::array src = as_array(src_, "src"), dst = as_array(dst_, "dst");
    const int threads = check_threads(threads_);
    check_layout(src, "src", 3, false);
    check_layout(dst, "dst", 3, true);
    if (!src.dtype().is(dst.dtype()))
        throw py::type_error("dst must have the dtype of src (" + std::string(py::str(src.dtype())) + "), got " +
                             std::string(py::str(dst.dtype())));
    const py::ssize_t e = src.itemsize();
    if (e != 4 && e != 8)
        throw py::type_error("src must have 4- or 8-byte elements (float32, float64, int64), got " +
                             std::string(py::str(src.dtype())));
    const i64 B = src.shape(0), R = src.shape(1), C = src.shape(2);
    if (dst.shape(0) != B || dst.shape(1) != C || dst.shape(2) != R)
        throw py::value_error("dst must have shape (" + std::to_string(B) + ", " + std::to_string(C) + ", " +
                              std::to_string(R) + ") for src of shape " + shape_str(src) + ", got " + shape_str(dst));
    check_no_overlap(dst, "dst", src, "src");
    const void* sp = src.data();
    void* dp = dst.mutable_data();
    py::gil_scoped_release nogil;
    if (e == 4) ck::swap_last_axes<4>(sp, dp, B, R, C, threads);
    else ck::swap_last_axes<8>(sp, dp, B, R, C, threads);
}

void add_clamp_(py::object y_, py::object r_, double act_min, double act_max, i64 threads_) {
    py::array y = as_array(y_, "y"), r = as_array(r_, "r");
    const int threads = check_threads(threads_);
    const Dtype dt = float_dtype(y, "y");
    check_same_dtype(r, "r", dt, "y");
    check_layout(y, "y", y.ndim(), true);
    check_layout(r, "r", r.ndim(), false);
    if (r.ndim() != y.ndim() || !std::equal(y.shape(), y.shape() + y.ndim(), r.shape()))
        throw py::value_error("r must have the shape of y " + shape_str(y) + ", got " + shape_str(r));
    if (r.data() != y.data()) check_no_overlap(y, "y", r, "r");
    check_act_range(act_min, act_max);
    const bool clamp = clamps(act_min, act_max);
    const i64 n = i64(y.size());
    void* yp = y.mutable_data();
    const void* rp = r.data();
    py::gil_scoped_release nogil;
    if (dt == Dtype::f32)
        ck::add_clamp_inplace<float>(static_cast<float*>(yp), static_cast<const float*>(rp), n, clamp,
                                     float(act_min), float(act_max), threads);
    else
        ck::add_clamp_inplace<double>(static_cast<double*>(yp), static_cast<const double*>(rp), n, clamp, act_min,
                                      act_max, threads);
}

py::tuple weights_digest(py::object a_, i64 threads_, bool check_finite) {
    py::array a = as_array(a_, "a");
    const int threads = check_threads(threads_);
    if (!(a.flags() & py::array::c_style)) throw py::value_error("a must be C-contiguous");
    const char kind = a.dtype().kind();
    const i64 itemsize = i64(a.itemsize());
    if (!(kind == 'f' && (itemsize == 4 || itemsize == 8)))
        throw py::type_error("a must be float32 or float64, got " + std::string(py::str(a.dtype())));
    const void* p = a.data();
    const i64 n = i64(a.nbytes());
    ck::Digest d;
    {
        py::gil_scoped_release nogil;
        d = ck::bytes_digest(p, n, !check_finite ? 0 : itemsize == 4 ? 1 : 2, threads);
    }
    return py::make_tuple(d.h0, d.h1, check_finite ? py::object(py::bool_(d.finite)) : py::object(py::none()));
}

}  // namespace

PYBIND11_MODULE(_cpp, m) {
    m.doc() = "C++ convolution and pooling kernels (arrays are validated, never converted or copied)";
    m.def("conv", &conv, py::arg("algorithm"), py::arg("x"), py::arg("w"), py::arg("bias"), py::arg("y"),
          py::arg("stride"), py::arg("pad"), py::arg("dilation"), py::arg("groups"), py::arg("threads"),
          py::arg("workspace_bytes"), py::arg("act_min") = -std::numeric_limits<double>::infinity(),
          py::arg("act_max") = std::numeric_limits<double>::infinity(),
          "N-d convolution into preallocated y (N, K, OD, OH, OW); algorithm is 'direct' or 'im2col'. "
          "Each output is then clamped to [act_min, act_max] (ReLU: act_min=0); NaN outputs stay NaN.");
    m.def("conv_workspace_bytes", &conv_workspace_bytes, py::arg("algorithm"), py::arg("N"), py::arg("C"),
          py::arg("K"), py::arg("groups"), py::arg("in"), py::arg("out"), py::arg("kernel"), py::arg("stride"),
          py::arg("pad"), py::arg("dilation"), py::arg("elem_size"), py::arg("threads"), py::arg("workspace_bytes"),
          "Bytes of scratch conv(algorithm='im2col') or igemm_conv allocates for this geometry: at most "
          "workspace_bytes unless the kernel's floor (one column / one padded plane) is larger, then the floor.");
    m.def("max_pool", &max_pool, py::arg("x"), py::arg("y"), py::arg("indices"), py::arg("kernel"),
          py::arg("stride"), py::arg("pad_before"), py::arg("dilation"), py::arg("threads"),
          "Max pooling into y; indices (int64, shape of y) or None.");
    m.def("avg_pool", &avg_pool, py::arg("x"), py::arg("y"), py::arg("kernel"), py::arg("stride"),
          py::arg("pad_before"), py::arg("pad_after"), py::arg("count_include_pad"), py::arg("divisor_override"),
          py::arg("threads"), "Average pooling into y; divisor_override 0 means none.");
    m.def("adaptive_avg_pool", &adaptive_avg_pool, py::arg("x"), py::arg("y"), py::arg("threads"),
          "Adaptive average pooling to y's spatial shape.");
    m.def("adaptive_max_pool", &adaptive_max_pool, py::arg("x"), py::arg("y"), py::arg("indices"),
          py::arg("threads"), "Adaptive max pooling to y's spatial shape; indices (int64) or None.");
    register_winograd(m);
    register_fast_kernels(m);
    register_igemm(m);
    m.def(
        "byte_offset",
        [](const py::array& a, const py::array& b) {
            return i64(reinterpret_cast<uintptr_t>(a.data()) - reinterpret_cast<uintptr_t>(b.data()));
        },
        py::arg("a"), py::arg("b"),
        "Address of a's data minus address of b's data, in bytes (placing one array relative to another; "
        "numpy's .ctypes.data costs ~1 us per array).");
    m.def("swap_last_axes", &swap_last_axes, py::arg("src"), py::arg("dst"), py::arg("threads"),
          "dst[b, c, r] = src[b, r, c]: C-contiguous 3-D arrays of one dtype with 4- or 8-byte elements, not "
          "overlapping.");
    m.def("add_clamp_", &add_clamp_, py::arg("y"), py::arg("r"), py::arg("act_min"), py::arg("act_max"),
          py::arg("threads"), "In place: y = clamp(y + r, act_min, act_max), same shape and dtype, C-contiguous.");
    m.def("weights_digest", &weights_digest, py::arg("a"), py::arg("threads"), py::arg("check_finite") = true,
          "(h0, h1, finite) of a C-contiguous float32/float64 array: a 128-bit digest of its bytes (any "
          "change of one element changes it) and whether every element is finite (None when check_finite "
          "is False: a faster read, the same digest).");
    m.def(
        "parallel_region_seconds",
        [](i64 threads, i64 rounds) {
            const int t = check_threads(threads);
            if (rounds < 1 || rounds > 1000)
                throw py::value_error("rounds must be in [1, 1000], got " + std::to_string(rounds));
            py::gil_scoped_release nogil;
            return ck::parallel_region_seconds(t, int(rounds));
        },
        py::arg("threads"), py::arg("rounds"),
        "Median seconds of `rounds` empty jobs every kernel thread must join: ~1 us when the threads have cores, "
        "milliseconds when other processes hold them.");
    m.def(
        "start_workers",
        [](i64 threads) {
            const int t = check_threads(threads);
            py::gil_scoped_release nogil;
            ck::start_pool_workers(t);
        },
        py::arg("threads"), "Start the kernel threads a call on `threads` threads uses, now rather than at that call.");
    m.def(
        "_pool_selftest",
        [](i64 threads, i64 n, i64 throw_at, i64 item_us) {
            const int t = check_threads(threads);
            if (n < 0 || n > (i64(1) << 20) || item_us < 0 || item_us > 10000)
                throw py::value_error("n must be in [0, 2**20] and item_us in [0, 10000]");
            py::gil_scoped_release nogil;
            return ck::pool_selftest(t, n, throw_at, int(item_us));
        },
        py::arg("threads"), py::arg("n"), py::arg("throw_at"), py::arg("item_us"),
        "Test hook of the kernel threads: the sum of the indices of the n items run; item throw_at raises.");
    m.def(
        "set_worker_doze",
        [](double seconds) {
            if (!(seconds >= 0 && seconds <= 3600))
                throw py::value_error("seconds must be in [0, 3600], got " + std::to_string(seconds));
            ck::set_worker_doze_us(i64(seconds * 1e6));
        },
        py::arg("seconds"), "How long an idle kernel thread looks for work every 50 us before it sleeps.");
    m.def(
        "prewarm_heap",
        [](i64 bytes) {
            if (bytes < 0 || bytes > (i64(30) << 20))
                throw py::value_error("bytes must be in [0, 30 MiB] (under glibc's largest mmap threshold, 32 MiB), got " +
                                      std::to_string(bytes));
            py::gil_scoped_release nogil;
            ck::prewarm_heap(size_t(bytes));
        },
        py::arg("bytes"),
        "Fault in `bytes` of heap on the calling thread and return them to malloc, so the first kernel call of the "
        "process does not pay for fresh memory (see scratch.h).");
    m.def("info", &info, "Build information: compiler, threads, ISA in use (isa) and usable on this CPU (isa_available).");
}
