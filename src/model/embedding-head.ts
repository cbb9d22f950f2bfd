import type { Descriptor } from './manifest.ts';
import { floatAttr, floatTensor, int64Tensor, intAttr, intsAttr, node } from './onnx-builder.ts';
import { DataType, type OnnxAttribute, type OnnxNode, type OnnxTensor } from './onnx-proto.ts';

/** Keeps an all-zero feature vector at zero instead of 0/0 = NaN; far below any real norm. */
const NORM_EPSILON = 1e-12;
/** GeM clamps activations away from 0 before x^p (Radenović et al.); ReLU maps are ≥ 0 already. */
const GEM_EPSILON = 1e-6;
/** GeM exponent: 3 is the fixed value of Radenović et al. and the one measured in issue 15. */
export const GEM_P = 3;
/** R-MAC scales (Tolias et al. 2016): 1 region, then 2×2, then 3×3 overlapping square regions. */
const RMAC_SCALES = 3;
/** Every node of the head is named under this prefix: the fp32 tail a quantizer must leave alone. */
export const HEAD_PREFIX = 'embedding/';

export interface EmbeddingHead {
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
}

export interface HeadOptions {
  /** Block 5's last ReLU output (or, for `mac`, its max pool), [N, C, S, S]. */
  features: string;
  output: string;
  opset: number;
  descriptor: Descriptor;
  /** S: the side of the feature map (input size / 16 for VGG16's block5_conv3). */
  mapSize: number;
  /** The features are float16: cast them to float32 first, so pooling and norms run in full precision. */
  fromFloat16?: boolean;
}

/**
 * The descriptor head appended after block 5, each L2-normalised:
 * - `mac`: Keras `VGG16(include_top=False, pooling='max')` then `feat / norm(feat)` (the classic demo);
 * - `gem`: generalised mean pooling, (mean x^p)^(1/p) with p = 3;
 * - `rmac`: regional max pooling at 3 scales, each region L2-normalised, summed.
 * Built from ops that exist with the same meaning from opset 7 on, so it can be appended to old Model
 * Zoo graphs without changing their opset. All node names start with HEAD_PREFIX.
 */
export function embeddingHead(options: HeadOptions): EmbeddingHead {
  const { opset, descriptor, output } = options;
  if (opset < 7) throw new Error(`Opset ${opset} is too old: the embedding head needs opset 7 or later`);
  const head: EmbeddingHead = { nodes: [], initializers: [] };
  let features = options.features;
  if (options.fromFloat16) {
    head.nodes.push(name('Cast', [features], [t('features_fp32')], [intAttr('to', DataType.FLOAT)]));
    features = t('features_fp32');
  }
  const pooled =
    descriptor === 'mac'
      ? macPool(head, features)
      : descriptor === 'gem'
        ? gemPool(head, features, opset)
        : rmacPool(head, features, options.mapSize, opset);
  head.nodes.push(name('Flatten', [pooled], [t('features')], [intAttr('axis', 1)]));
  l2Normalise(head, t('features'), output, 1, opset, '');
  return head;
}

/** A tensor name inside the head. */
function t(suffix: string): string {
  return `${HEAD_PREFIX}${suffix}`;
}

/** A head node named after its op (and tag). */
function name(op: string, inputs: string[], outputs: string[], attributes: OnnxAttribute[] = [], tag = '') {
  return node(op, t(`${op}${tag}`), inputs, outputs, attributes);
}

function macPool(head: EmbeddingHead, features: string): string {
  head.nodes.push(name('GlobalMaxPool', [features], [t('max_pool')]));
  return t('max_pool');
}

function gemPool(head: EmbeddingHead, features: string, opset: number): string {
  head.initializers.push(
    floatTensor(t('gem_p'), [], Float32Array.of(GEM_P)),
    floatTensor(t('gem_inverse_p'), [], Float32Array.of(1 / GEM_P)),
  );
  // Max broadcasts from opset 8; before it, Clip took its bounds as attributes.
  if (opset >= 8) {
    head.initializers.push(floatTensor(t('gem_epsilon'), [], Float32Array.of(GEM_EPSILON)));
    head.nodes.push(name('Max', [features, t('gem_epsilon')], [t('gem_clamped')]));
  } else {
    head.nodes.push(name('Clip', [features], [t('gem_clamped')], [floatAttr('min', GEM_EPSILON)]));
  }
  head.nodes.push(
    name('Pow', [t('gem_clamped'), t('gem_p')], [t('gem_powered')]),
    name('GlobalAveragePool', [t('gem_powered')], [t('gem_mean')]),
    name('Pow', [t('gem_mean'), t('gem_inverse_p')], [t('gem_pool')], [], '_root'),
  );
  return t('gem_pool');
}

/** Square regions of side ⌊2S/(l+1)⌋ at scale l, l per side with overlap (one region at l = 1). */
export function rmacRegions(mapSize: number): { side: number; stride: number }[] {
  return Array.from({ length: RMAC_SCALES }, (_, i) => {
    const scale = i + 1;
    const side = scale === 1 ? mapSize : Math.floor((2 * mapSize) / (scale + 1));
    const stride = scale === 1 ? 1 : Math.max(1, Math.floor((mapSize - side) / (scale - 1)));
    return { side, stride };
  });
}

function rmacPool(head: EmbeddingHead, features: string, mapSize: number, opset: number): string {
  const regions = rmacRegions(mapSize);
  const count = regions.reduce(
    (sum, { side, stride }) => sum + (Math.floor((mapSize - side) / stride) + 1) ** 2,
    0,
  );
  head.initializers.push(
    int64Tensor(t('rmac_shape'), [0, 0, -1]),
    floatTensor(t('rmac_ones'), [count, 1], new Float32Array(count).fill(1)),
  );
  const perScale = regions.map(({ side, stride }, i) => {
    head.nodes.push(
      name(
        'MaxPool',
        [features],
        [t(`rmac_scale${i + 1}`)],
        [intsAttr('kernel_shape', [side, side]), intsAttr('strides', [stride, stride])],
        `_scale${i + 1}`,
      ),
      name(
        'Reshape',
        [t(`rmac_scale${i + 1}`), t('rmac_shape')],
        [t(`rmac_regions${i + 1}`)],
        [],
        `_scale${i + 1}`,
      ),
    );
    return t(`rmac_regions${i + 1}`);
  });
  head.nodes.push(name('Concat', perScale, [t('rmac_regions')], [intAttr('axis', 2)]));
  // [N, C, R]: normalise each region over the channels, then sum the regions (a MatMul with ones).
  l2Normalise(head, t('rmac_regions'), t('rmac_unit_regions'), 1, opset, '_regions');
  head.nodes.push(name('MatMul', [t('rmac_unit_regions'), t('rmac_ones')], [t('rmac_pool')]));
  return t('rmac_pool');
}

function l2Normalise(
  head: EmbeddingHead,
  input: string,
  output: string,
  axis: number,
  opset: number,
  tag: string,
): void {
  // The untagged names are those of the classic head, so its graph keeps its bytes.
  const norm = t(`norm${tag}`);
  const epsilon = t(`epsilon${tag}`);
  head.initializers.push(floatTensor(epsilon, [], Float32Array.of(NORM_EPSILON)));
  // ReduceL2 took `axes` as an attribute up to opset 17 and as an input from opset 18.
  if (opset >= 18) {
    head.initializers.push(int64Tensor(t(`axes${tag}`), [axis]));
    head.nodes.push(
      node('ReduceL2', t(`ReduceL2${tag}`), [input, t(`axes${tag}`)], [norm], [intAttr('keepdims', 1)]),
    );
  } else {
    head.nodes.push(
      node(
        'ReduceL2',
        t(`ReduceL2${tag}`),
        [input],
        [norm],
        [intsAttr('axes', [axis]), intAttr('keepdims', 1)],
      ),
    );
  }
  head.nodes.push(
    node('Add', t(`AddEpsilon${tag}`), [norm, epsilon], [t(`norm_safe${tag}`)]),
    node('Div', t(`Div${tag}`), [input, t(`norm_safe${tag}`)], [output]),
  );
}
