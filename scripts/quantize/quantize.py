"""Static int8 quantization of a pic-search extractor with onnxruntime's quantizer (QDQ format).

Called by scripts/model-quantize.ts, which preprocesses the calibration photos with the project's own
image pipeline and writes them as one raw float32 NCHW file, so calibration sees exactly what inference
will. Prints one JSON line: the quantization settings and, per quantized tensor, its scale and zero point.

Only the convolutional trunk is quantized (Conv, its ReLU, MaxPool): the descriptor head after the last
convolution's ReLU (pooling, whitening, L2 normalisation) stays float32, as its small reductions are where
int8 error shows. The ReLUs are included so that the quantizer folds each into the uint8 output of its
Conv (zero point 0): onnxruntime then runs Conv to Conv in uint8, instead of requantizing every activation
around a float32 ReLU, which took 1.1 to 1.5 times as long by setting (docs/models.md).
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


# Part of the recipe INT8_RECIPE names (src/model/precision.ts): change both, so `npm start` remakes older models.
TRUNK_OPS = ["Conv", "Relu", "MaxPool"]


def trunk_nodes(model):
    """Names of the trunk's nodes up to the last Conv and its ReLU: everything after them is the head."""
    nodes = list(model.graph.node)
    end = max(i for i, n in enumerate(nodes) if n.op_type == "Conv") + 1
    if end < len(nodes) and nodes[end].op_type == "Relu":
        end += 1
    return [n.name for n in nodes[:end] if n.op_type in TRUNK_OPS]


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
        "opTypes": TRUNK_OPS,
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
        op_types_to_quantize=TRUNK_OPS,
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
