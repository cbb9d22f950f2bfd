import { floatTensor, int64Tensor, intAttr, intsAttr, node } from './onnx-builder.ts';
import { DataType, type OnnxNode, type OnnxTensor } from './onnx-proto.ts';

/** Keeps an all-zero feature vector at zero instead of 0/0 = NaN; far below any real norm. */
const NORM_EPSILON = 1e-12;

export interface EmbeddingHead {
  nodes: OnnxNode[];
  initializers: OnnxTensor[];
}

/**
 * Keras `VGG16(include_top=False, pooling='max')` then `feat / norm(feat)`: GlobalMaxPool → Flatten →
 * divide by the L2 norm. Built from ops that exist with the same meaning from opset 7 on, so it can be
 * appended to old Model Zoo graphs without changing their opset. `fromFloat16` casts the pooled
 * features back to float32 so the normalisation (and its epsilon) runs in full precision.
 */
export function embeddingHead(
  features: string,
  output: string,
  opset: number,
  fromFloat16 = false,
): EmbeddingHead {
  if (opset < 7) throw new Error(`Opset ${opset} is too old: the embedding head needs opset 7 or later`);
  const nodes: OnnxNode[] = [
    node('GlobalMaxPool', 'embedding/GlobalMaxPool', [features], ['embedding/max_pool']),
  ];
  let pooled = 'embedding/max_pool';
  if (fromFloat16) {
    nodes.push(
      node('Cast', 'embedding/Cast', [pooled], ['embedding/max_pool_fp32'], [intAttr('to', DataType.FLOAT)]),
    );
    pooled = 'embedding/max_pool_fp32';
  }
  const initializers: OnnxTensor[] = [floatTensor('embedding/epsilon', [], Float32Array.of(NORM_EPSILON))];
  // ReduceL2 took `axes` as an attribute up to opset 17 and as an input from opset 18.
  const reduce =
    opset >= 18
      ? node(
          'ReduceL2',
          'embedding/ReduceL2',
          ['embedding/features', 'embedding/axes'],
          ['embedding/norm'],
          [intAttr('keepdims', 1)],
        )
      : node(
          'ReduceL2',
          'embedding/ReduceL2',
          ['embedding/features'],
          ['embedding/norm'],
          [intsAttr('axes', [1]), intAttr('keepdims', 1)],
        );
  if (opset >= 18) initializers.push(int64Tensor('embedding/axes', [1]));
  nodes.push(
    node('Flatten', 'embedding/Flatten', [pooled], ['embedding/features'], [intAttr('axis', 1)]),
    reduce,
    node('Add', 'embedding/AddEpsilon', ['embedding/norm', 'embedding/epsilon'], ['embedding/norm_safe']),
    node('Div', 'embedding/Div', ['embedding/features', 'embedding/norm_safe'], [output]),
  );
  return { nodes, initializers };
}
