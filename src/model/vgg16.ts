import { embeddingHead } from './embedding-head.ts';
import type { Descriptor } from './manifest.ts';
import { floatTensor, intAttr, intsAttr, node, tensorValue } from './onnx-builder.ts';
import { DataType, type OnnxModel, type OnnxNode, type OnnxTensor } from './onnx-proto.ts';
import { createPrng } from './prng.ts';

/** Output channels of VGG16's 13 convolutions, per block; each block ends with a 2×2 max pool. */
export const VGG16_BLOCKS: readonly (readonly number[])[] = [
  [64, 64],
  [128, 128],
  [256, 256, 256],
  [512, 512, 512],
  [512, 512, 512],
];
export const VGG16_INPUT_SIZE = 224;
/** Name of block 5's last ReLU output in generated graphs (the tensor the converter cuts at). */
export const VGG16_BLOCK5_FEATURES = 'block5_conv3';

/**
 * `embedding`: the extractor (conv stack → global max pool → L2 normalisation).
 * `classifier`: the full classifier as the Model Zoo (MXNet export: Flatten → Gemm/ReLU/Dropout ×2 → Gemm)
 * or torchvision (AdaptiveAvgPool exported as AveragePool → Flatten → Gemm/ReLU ×2 → Gemm) writes it;
 * `hidden`/`classes` may be shrunk from 4096/1000 to keep test models small.
 */
export type Vgg16Head =
  | { kind: 'embedding'; descriptor: Descriptor }
  | { kind: 'classifier'; style: 'zoo' | 'torchvision'; hidden: number; classes: number };

export interface Vgg16Options {
  seed: number;
  head: Vgg16Head;
  opset?: number;
  inputName?: string;
  /** A fixed batch size, as old exports have, or a symbolic name (default "batch"). */
  batch?: number | string;
}

/**
 * VGG16 (Keras/torchvision topology: 3×3 convs, pad 1, ReLU, 2×2/2 max pools) with He-uniform weights
 * from a seeded PRNG and zero biases, so ReLU activations keep their scale through 13 layers and the
 * same seed always serialises to the same bytes.
 */
export function buildVgg16(options: Vgg16Options): OnnxModel {
  const { seed, head, opset = 13, inputName = 'input', batch = 'batch' } = options;
  const random = createPrng(seed);
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];

  let current = inputName;
  let channels = 3;
  VGG16_BLOCKS.forEach((widths, b) => {
    const lastBlock = b === VGG16_BLOCKS.length - 1;
    widths.forEach((width, c) => {
      const name = `block${b + 1}_conv${c + 1}`;
      initializers.push(
        floatTensor(
          `${name}/kernel`,
          [width, channels, 3, 3],
          heUniform(random, width * channels * 9, channels * 9),
        ),
        floatTensor(`${name}/bias`, [width], new Float32Array(width)),
      );
      nodes.push(
        node(
          'Conv',
          `${name}/Conv`,
          [current, `${name}/kernel`, `${name}/bias`],
          [`${name}/conv`],
          [intsAttr('kernel_shape', [3, 3]), intsAttr('pads', [1, 1, 1, 1]), intsAttr('strides', [1, 1])],
        ),
        node('Relu', `${name}/Relu`, [`${name}/conv`], [name]),
      );
      current = name;
      channels = width;
    });
    // GeM and R-MAC read block5_conv3 (14×14). MAC keeps Keras's block5_pool: the max of the pooled map
    // is the same value, and the classic graph keeps its bytes.
    if (lastBlock && head.kind === 'embedding' && head.descriptor !== 'mac') return;
    const pool = `block${b + 1}_pool`;
    nodes.push(
      node(
        'MaxPool',
        `${pool}/MaxPool`,
        [current],
        [pool],
        [intsAttr('kernel_shape', [2, 2]), intsAttr('strides', [2, 2])],
      ),
    );
    current = pool;
  });

  let output: string;
  let outputDims: (number | string)[];
  if (head.kind === 'embedding') {
    const tail = embeddingHead({
      features: current,
      output: 'embedding',
      opset,
      descriptor: head.descriptor,
      mapSize: VGG16_INPUT_SIZE / 16,
    });
    nodes.push(...tail.nodes);
    initializers.push(...tail.initializers);
    output = 'embedding';
    outputDims = [batch, channels];
  } else {
    const spatial = VGG16_INPUT_SIZE / 32;
    const classifier = classifierHead(head, random, current, channels * spatial * spatial);
    nodes.push(...classifier.nodes);
    initializers.push(...classifier.initializers);
    output = 'logits';
    outputDims = [batch, head.classes];
  }

  return {
    ir_version: irVersionFor(opset),
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'pic-search',
    producer_version: 'model:generate/1',
    doc_string: `VGG16 topology with seeded random weights (seed ${seed}); not pretrained.`,
    graph: {
      name: head.kind === 'embedding' ? 'vgg16_seeded_extractor' : 'vgg16_seeded_classifier',
      node: nodes,
      initializer: initializers,
      input: [tensorValue(inputName, DataType.FLOAT, [batch, 3, VGG16_INPUT_SIZE, VGG16_INPUT_SIZE])],
      output: [tensorValue(output, DataType.FLOAT, outputDims)],
    },
  };
}

function classifierHead(
  head: Extract<Vgg16Head, { kind: 'classifier' }>,
  random: () => number,
  pooled: string,
  flatWidth: number,
): { nodes: OnnxNode[]; initializers: OnnxTensor[] } {
  const nodes: OnnxNode[] = [];
  const initializers: OnnxTensor[] = [];
  let current = pooled;
  if (head.style === 'torchvision') {
    nodes.push(
      node(
        'AveragePool',
        'avgpool/AveragePool',
        [current],
        ['avgpool'],
        [intsAttr('kernel_shape', [1, 1]), intsAttr('strides', [1, 1])],
      ),
    );
    current = 'avgpool';
  }
  nodes.push(node('Flatten', 'flatten/Flatten', [current], ['flatten'], [intAttr('axis', 1)]));
  current = 'flatten';
  const layers = [
    { name: 'fc1', width: head.hidden },
    { name: 'fc2', width: head.hidden },
    { name: 'predictions', width: head.classes },
  ];
  let inWidth = flatWidth;
  for (const [i, { name, width }] of layers.entries()) {
    initializers.push(
      floatTensor(`${name}/kernel`, [width, inWidth], heUniform(random, width * inWidth, inWidth)),
      floatTensor(`${name}/bias`, [width], new Float32Array(width)),
    );
    const out = i === layers.length - 1 ? 'logits' : `${name}/gemm`;
    nodes.push(
      node(
        'Gemm',
        `${name}/Gemm`,
        [current, `${name}/kernel`, `${name}/bias`],
        [out],
        [intAttr('transB', 1)],
      ),
    );
    if (out !== 'logits') {
      nodes.push(node('Relu', `${name}/Relu`, [out], [name]));
      current = name;
      if (head.style === 'zoo') {
        nodes.push(node('Dropout', `${name}/Dropout`, [current], [`${name}/dropout`]));
        current = `${name}/dropout`;
      }
    }
    inWidth = width;
  }
  return { nodes, initializers };
}

function heUniform(random: () => number, count: number, fanIn: number): Float32Array {
  const limit = Math.sqrt(6 / fanIn);
  const values = new Float32Array(count);
  for (let i = 0; i < count; i++) values[i] = (2 * random() - 1) * limit;
  return values;
}

/** The oldest IR version that allows the opset, as exporters of that era wrote it. */
function irVersionFor(opset: number): number {
  if (opset >= 18) return 8;
  if (opset >= 13) return 7;
  if (opset >= 9) return 4;
  return 3;
}
