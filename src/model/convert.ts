import { readFile } from 'node:fs/promises';
import { DEFAULT_DESCRIPTOR } from './descriptors.ts';
import { embeddingHead } from './embedding-head.ts';
import { toFloat16 } from './float16.ts';
import type { Descriptor, ModelManifest, PreprocessProfile } from './manifest.ts';
import { ModelError } from './model-error.ts';
import { writeModelFiles } from './model-files.ts';
import { bytesOf, floatValues, intAttr, node, tensorValue } from './onnx-builder.ts';
import {
  DataType,
  decodeModel,
  defaultOpset,
  encodeModel,
  type OnnxGraph,
  type OnnxModel,
  type OnnxNode,
  type OnnxTensor,
} from './onnx-proto.ts';
import { CAFFE_BGR_MEAN } from './seeded.ts';

const INPUT = 'input';
const OUTPUT = 'embedding';
const FULLY_CONNECTED = new Set(['Gemm', 'MatMul']);

export interface ConvertOptions {
  /** Store weights as float16 and compute in float16; the model's input and output stay float32. */
  fp16?: boolean;
  /** @default DEFAULT_DESCRIPTOR */
  descriptor?: Descriptor;
}

export interface ConvertedModel {
  bytes: Uint8Array;
  /** Channels of block 5, the embedding's length. */
  dimension: number;
  /** Input height and width. */
  size: number;
  /** The tensor the graph was cut at (block 5's last ReLU output). */
  cutAt: string;
  droppedInitializers: string[];
}

/**
 * Turns a full VGG16 classifier (Model Zoo MXNet export or torchvision export) into the extractor:
 * keeps everything up to block 5's last ReLU, found by topology as the input of the last MaxPool that
 * feeds the first fully connected layer, then appends the descriptor head (src/model/embedding-head.ts).
 * Unused weights (the FC head) are dropped, the batch dimension becomes symbolic, the input is named
 * "input" and the output "embedding".
 */
export function convertClassifier(source: Uint8Array, options: ConvertOptions = {}): ConvertedModel {
  const model = decode(source);
  const { graph } = model;
  const opset = defaultOpset(model);
  const initializerNames = new Set(graph.initializer.map((t) => t.name));
  const { cutAt, keptIndices } = findBlock5(graph);
  const kept = graph.node.filter((_, i) => keptIndices.has(i)).map((n) => ({ ...n, input: [...n.input] }));
  const used = new Set(kept.flatMap((n) => n.input));
  const dataInputs = graph.input.filter((v) => !initializerNames.has(v.name) && used.has(v.name));
  const [dataInput] = dataInputs;
  const dims = dataInput?.type?.tensor_type?.shape?.dim ?? [];
  if (dataInputs.length !== 1 || !dataInput || dims.length !== 4) {
    throw new ModelError(
      'Expected exactly one NCHW image input feeding the convolutions',
      'unsupported_graph',
    );
  }
  if (kept.some((n) => n.output.includes(INPUT) || n.output.includes(OUTPUT))) {
    throw new ModelError(
      `The graph already has tensors named "${INPUT}" or "${OUTPUT}"`,
      'unsupported_graph',
    );
  }
  const lastConv = kept.findLast((n) => n.op_type === 'Conv');
  const dimension = graph.initializer.find((t) => t.name === lastConv?.input[1])?.dims[0];
  if (dimension === undefined)
    throw new ModelError('Cannot find the last convolution’s weights', 'unsupported_graph');

  const keptInitializers = graph.initializer.filter((t) => used.has(t.name));
  const droppedInitializers = graph.initializer.filter((t) => !used.has(t.name)).map((t) => t.name);
  const nodes: OnnxNode[] = [];
  let imageTensor = INPUT;
  if (options.fp16) {
    imageTensor = 'input/fp16';
    nodes.push(node('Cast', 'input/Cast', [INPUT], [imageTensor], [intAttr('to', DataType.FLOAT16)]));
  }
  for (const n of kept) n.input = n.input.map((name) => (name === dataInput.name ? imageTensor : name));
  const [, channels, height, width] = dims.map((d) => d.dim_value ?? d.dim_param ?? '?');
  const size = typeof height === 'number' && height === width ? height : 224;
  const head = embeddingHead({
    features: cutAt,
    output: OUTPUT,
    opset,
    descriptor: options.descriptor ?? DEFAULT_DESCRIPTOR,
    // block5_conv3 is four 2×2 pools below the input.
    mapSize: size / 16,
    fromFloat16: options.fp16 ?? false,
  });
  nodes.push(...kept, ...head.nodes);
  const extractor: OnnxModel = {
    // IR 4+ lets initialisers stay out of the graph inputs, so onnxruntime treats them as constants
    // (prepacked Conv weights) instead of overridable inputs, as old IR 3 exports list them.
    ir_version: Math.max(model.ir_version, 4),
    opset_import: model.opset_import,
    producer_name: 'pic-search model:convert',
    producer_version: '1',
    doc_string: `VGG16 feature extractor (block 5 → ${options.descriptor ?? DEFAULT_DESCRIPTOR} → L2) converted from ${model.producer_name || 'an unnamed producer'}.`,
    graph: {
      name: 'vgg16_extractor',
      node: nodes,
      initializer: [
        ...(options.fp16 ? keptInitializers.map(toFloat16Tensor) : keptInitializers),
        ...head.initializers,
      ],
      input: [tensorValue(INPUT, DataType.FLOAT, ['batch', channels ?? 3, size, size])],
      output: [tensorValue(OUTPUT, DataType.FLOAT, ['batch', dimension])],
    },
  };
  return { bytes: encodeModel(extractor), dimension, size, cutAt, droppedInitializers };
}

/**
 * Block 5's last ReLU output: the input of the last MaxPool that feeds the first fully connected layer,
 * so the exporter's naming (MXNet `vgg0_…` in the Model Zoo, torchvision `/features/…`) does not matter.
 */
function findBlock5(graph: OnnxGraph): { cutAt: string; keptIndices: Set<number> } {
  const producer = new Map<string, number>();
  graph.node.forEach((n, i) => {
    for (const out of n.output) producer.set(out, i);
  });
  const ancestorsOf = (tensors: string[]): Set<number> => {
    const seen = new Set<number>();
    const pending = [...tensors];
    for (let tensor = pending.pop(); tensor !== undefined; tensor = pending.pop()) {
      const index = producer.get(tensor);
      if (index === undefined || seen.has(index)) continue;
      seen.add(index);
      pending.push(...(graph.node[index]?.input ?? []));
    }
    return seen;
  };

  const firstFc = graph.node.find((n) => FULLY_CONNECTED.has(n.op_type));
  if (!firstFc) {
    throw new ModelError(
      'No fully connected layer (Gemm/MatMul) found: this is not a full VGG16 classifier',
      'unsupported_graph',
    );
  }
  const lastPool = Math.max(
    ...[...ancestorsOf(firstFc.input)].filter((i) => graph.node[i]?.op_type === 'MaxPool'),
  );
  const cutAt = graph.node[lastPool]?.input[0];
  if (!Number.isFinite(lastPool) || cutAt === undefined) {
    throw new ModelError(
      'No MaxPool before the fully connected layers: not a VGG-style graph',
      'unsupported_graph',
    );
  }
  const cutProducer = graph.node[producer.get(cutAt) ?? -1];
  if (cutProducer?.op_type !== 'Relu') {
    throw new ModelError(
      `The last MaxPool before the classifier reads ${cutProducer?.op_type ?? 'a graph input'}, not a ReLU: not a VGG-style graph`,
      'unsupported_graph',
    );
  }
  return { cutAt, keptIndices: ancestorsOf([cutAt]) };
}

function decode(source: Uint8Array): OnnxModel {
  let model: OnnxModel;
  try {
    model = decodeModel(source);
  } catch (error) {
    throw new ModelError(`Not a readable ONNX model: ${(error as Error).message}`, 'not_onnx');
  }
  if (model.graph.node.length === 0)
    throw new ModelError('Not an ONNX model: the graph has no nodes', 'not_onnx');
  if (model.functions?.length || model.training_info?.length || model.graph.sparse_initializer?.length) {
    throw new ModelError(
      'Models with functions, training info or sparse initialisers are not supported',
      'unsupported_graph',
    );
  }
  if (model.graph.initializer.some((t) => t.data_location === 1)) {
    throw new ModelError(
      'Models with external weight files are not supported: use a single-file ONNX',
      'unsupported_graph',
    );
  }
  return model;
}

function toFloat16Tensor(tensor: OnnxTensor): OnnxTensor {
  if (tensor.data_type !== DataType.FLOAT) return tensor;
  return {
    name: tensor.name,
    dims: tensor.dims,
    data_type: DataType.FLOAT16,
    raw_data: bytesOf(toFloat16(floatValues(tensor))),
  };
}

export type NormalisationName = 'imagenet' | 'caffe';

/** Model Zoo and torchvision weights expect ImageNet mean/std on RGB; Keras weights caffe BGR means. */
function normalisationFor(
  name: NormalisationName,
): Pick<ModelManifest, 'normalisation'> & { colorOrder: 'RGB' | 'BGR' } {
  return name === 'caffe'
    ? { colorOrder: 'BGR', normalisation: { kind: 'caffe', mean: CAFFE_BGR_MEAN } }
    : {
        colorOrder: 'RGB',
        normalisation: { kind: 'mean-std', mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
      };
}

export interface ConvertFileOptions extends ConvertOptions {
  inputPath: string;
  outPath: string;
  name: string;
  normalisation?: NormalisationName;
  profile?: PreprocessProfile;
  /** Only the fetch path sets this, after verifying the published checksum. */
  pretrained?: boolean;
  source: string;
}

export async function convertModelFile(
  options: ConvertFileOptions,
): Promise<{ manifestPath: string; manifest: ModelManifest; converted: ConvertedModel }> {
  const converted = convertClassifier(await readFile(options.inputPath), options);
  const { colorOrder, normalisation } = normalisationFor(options.normalisation ?? 'imagenet');
  const written = await writeModelFiles(options.outPath, converted.bytes, {
    name: options.name,
    pretrained: options.pretrained ?? false,
    source: options.source,
    input: { name: INPUT, layout: 'NCHW', size: converted.size, colorOrder, dataType: 'float32' },
    normalisation,
    profile: options.profile ?? 'quality',
    output: {
      name: OUTPUT,
      dimension: converted.dimension,
      descriptor: options.descriptor ?? DEFAULT_DESCRIPTOR,
      l2Normalised: true,
    },
  });
  return { ...written, converted };
}
