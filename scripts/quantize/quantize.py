"""Static int8 quantization of a pic-search extractor with onnxruntime's quantizer (QDQ format).

Called by scripts/model-quantize.ts, which preprocesses the calibration photos with the project's own
image pipeline and writes them as one raw float32 NCHW file, so calibration sees exactly what inference
will. Prints one JSON line: the quantization settings and, per quantized tensor, its scale and zero point.

Only Conv (and the MaxPools between them) are quantized: the descriptor head after the last convolution
(pooling, whitening, L2 normalisation) stays float32, as its small reductions are where int8 error shows.
"""

import argparse
import json

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process


class Calibration(CalibrationDataReader):
    def __init__(self, input_name, batches):
        self._feeds = iter([{input_name: batch} for batch in batches])

    def get_next(self):
        return next(self._feeds, None)


def trunk_nodes(model):
    """Names of the Conv and MaxPool nodes up to the last Conv: everything after it is the head."""
    nodes = list(model.graph.node)
    last_conv = max(i for i, n in enumerate(nodes) if n.op_type == "Conv")
    return [n.name for n in nodes[: last_conv + 1] if n.op_type in ("Conv", "MaxPool")]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", required=True)
    parser.add_argument("--output", required=True)
    parser.add_argument("--calibration", required=True, help="raw float32 NCHW tensors")
    parser.add_argument("--input-name", required=True)
    parser.add_argument("--size", type=int, required=True)
    parser.add_argument("--method", default="MinMax", choices=["MinMax", "Percentile", "Entropy"])
    args = parser.parse_args()

    images = np.fromfile(args.calibration, dtype=np.float32).reshape(-1, 3, args.size, args.size)
    preprocessed = args.output + ".pre.onnx"
    # Shape inference and graph cleanup first, as onnxruntime recommends before static quantization.
    quant_pre_process(args.model, preprocessed, skip_symbolic_shape=True)
    model = onnx.load(preprocessed)
    nodes = trunk_nodes(model)
    settings = {
        "format": "QDQ",
        "weightType": "QInt8",
        "activationType": "QUInt8",
        "perChannel": True,
        "calibrateMethod": args.method,
        "opTypes": ["Conv", "MaxPool"],
        "nodesQuantized": len(nodes),
        "calibrationImages": int(images.shape[0]),
    }
    quantize_static(
        preprocessed,
        args.output,
        Calibration(args.input_name, [images[i : i + 1] for i in range(images.shape[0])]),
        quant_format=QuantFormat.QDQ,
        weight_type=QuantType.QInt8,
        activation_type=QuantType.QUInt8,
        per_channel=True,
        nodes_to_quantize=nodes,
        op_types_to_quantize=["Conv", "MaxPool"],
        calibrate_method=getattr(CalibrationMethod, args.method),
    )
    quantized = onnx.load(args.output)
    initializers = {t.name: t for t in quantized.graph.initializer}
    parameters = {}
    for node in quantized.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[1] not in initializers:
            continue
        scale = onnx.numpy_helper.to_array(initializers[node.input[1]])
        zero = onnx.numpy_helper.to_array(initializers[node.input[2]])
        parameters[node.input[0]] = {"scale": float(scale), "zeroPoint": int(zero)}
    print(json.dumps({"settings": settings, "activations": parameters}))


if __name__ == "__main__":
    main()
