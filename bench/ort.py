"""onnxruntime (MLAS) as a second peer: one-node ONNX models of the suite's layers, when onnx and onnxruntime
are installed. Channels-last rows have no onnxruntime counterpart (its CPU kernels take NCHW)."""
import numpy as np


def _modules():
    try:
        import onnx
        import onnxruntime
        return onnx, onnxruntime
    except ImportError:
        return None


def available():
    return _modules() is not None


def _node(onnx, case):
    """The layer as one ONNX node (and its weight initializers), NCHW float32."""
    h = onnx.helper
    if getattr(case, "op", None) == "conv2d":
        p, k = case.padding, case.kernel
        attrs = dict(kernel_shape=[k, k], strides=[case.stride] * 2, pads=[p] * 4, dilations=[case.dilation] * 2,
                     group=case.groups)
        return h.make_node("Conv", ["x", "w"], ["y"], **attrs)
    if case.kind == "global":
        return h.make_node("GlobalAveragePool", ["x"], ["y"])
    attrs = dict(kernel_shape=[case.kernel] * 2, strides=[case.stride] * 2, pads=[case.padding] * 4)
    if case.kind == "max":
        return h.make_node("MaxPool", ["x"], ["y"], **attrs)
    return h.make_node("AveragePool", ["x"], ["y"], count_include_pad=int(case.count_include_pad), **attrs)


def session(case, x, w, threads):
    """A callable running the layer on x in onnxruntime with ``threads`` intra-op threads, or None."""
    mods = _modules()
    if mods is None or case.layout != "NCHW":
        return None
    onnx, ort = mods
    h = onnx.helper
    inits = [] if getattr(case, "op", None) != "conv2d" else [onnx.numpy_helper.from_array(w, "w")]
    graph = h.make_graph([_node(onnx, case)], case.name,
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(x.shape))],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)], inits)
    model = h.make_model(graph, opset_imports=[h.make_opsetid("", 17)])
    model.ir_version = min(model.ir_version, 9)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    # Its idle workers otherwise spin for milliseconds after each run, taking the cores from whatever is timed
    # next in the interleaved rounds (measured: our 2-thread igemm on 256x14x14 1.6 -> 5.0 ms right after an
    # onnxruntime call); without spinning onnxruntime's own time was unchanged (1.29 vs 1.17 ms, 2 threads).
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    feed = {"x": np.ascontiguousarray(x)}
    return lambda: sess.run(None, feed)[0]
