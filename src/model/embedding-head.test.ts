import * as ort from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import { embeddingHead, GEM_P, rmacRegions } from './embedding-head.ts';
import type { Descriptor } from './manifest.ts';
import { tensorValue } from './onnx-builder.ts';
import { DataType, encodeModel } from './onnx-proto.ts';
import { createPrng } from './prng.ts';

const CHANNELS = 6;
const SIZE = 14;

/** The head alone, on a [N, C, S, S] input, at `opset`. */
async function headSession(descriptor: Descriptor, opset: number): Promise<ort.InferenceSession> {
  const head = embeddingHead({ features: 'maps', output: 'embedding', opset, descriptor, mapSize: SIZE });
  const bytes = encodeModel({
    ir_version: opset >= 13 ? 7 : 4,
    opset_import: [{ domain: '', version: opset }],
    producer_name: 'test',
    producer_version: '1',
    doc_string: '',
    graph: {
      name: 'head',
      node: head.nodes,
      initializer: head.initializers,
      input: [tensorValue('maps', DataType.FLOAT, ['batch', CHANNELS, SIZE, SIZE])],
      output: [tensorValue('embedding', DataType.FLOAT, ['batch', CHANNELS])],
    },
  });
  return ort.InferenceSession.create(bytes);
}

function unit(values: number[]): number[] {
  const norm = Math.hypot(...values);
  return values.map((v) => v / norm);
}

/** Reference descriptors in plain JS, from the papers' definitions. */
function reference(descriptor: Descriptor, maps: Float32Array): number[] {
  const at = (c: number, y: number, x: number) => maps[(c * SIZE + y) * SIZE + x] as number;
  const channels = Array.from({ length: CHANNELS }, (_, c) => c);
  if (descriptor === 'mac') {
    return unit(
      channels.map((c) =>
        Math.max(...Array.from({ length: SIZE * SIZE }, (_, i) => at(c, (i / SIZE) | 0, i % SIZE))),
      ),
    );
  }
  if (descriptor === 'gem') {
    return unit(
      channels.map((c) => {
        let sum = 0;
        for (let i = 0; i < SIZE * SIZE; i++) sum += Math.max(at(c, (i / SIZE) | 0, i % SIZE), 1e-6) ** GEM_P;
        return (sum / (SIZE * SIZE)) ** (1 / GEM_P);
      }),
    );
  }
  const total = new Array<number>(CHANNELS).fill(0);
  for (const { side, stride } of rmacRegions(SIZE)) {
    for (let y0 = 0; y0 + side <= SIZE; y0 += stride) {
      for (let x0 = 0; x0 + side <= SIZE; x0 += stride) {
        const region = channels.map((c) => {
          let max = Number.NEGATIVE_INFINITY;
          for (let y = y0; y < y0 + side; y++)
            for (let x = x0; x < x0 + side; x++) max = Math.max(max, at(c, y, x));
          return max;
        });
        unit(region).forEach((v, c) => {
          total[c] = (total[c] as number) + v;
        });
      }
    }
  }
  return unit(total);
}

describe('descriptor heads', () => {
  const random = createPrng(3);
  // ReLU-like maps: non-negative, a quarter exactly zero.
  const maps = Float32Array.from({ length: CHANNELS * SIZE * SIZE }, () => Math.max(0, random() * 4 - 1));

  for (const descriptor of ['mac', 'gem', 'rmac'] as const) {
    for (const opset of [7, 13, 18]) {
      it(`${descriptor} at opset ${opset} equals its definition, L2-normalised`, async () => {
        // Prepare
        const session = await headSession(descriptor, opset);

        // Act
        const result = await session.run({
          maps: new ort.Tensor('float32', maps, [1, CHANNELS, SIZE, SIZE]),
        });
        const output = Array.from(result.embedding?.data as Float32Array);

        // Assess
        const expected = reference(descriptor, maps);
        for (const [i, value] of output.entries()) expect(value).toBeCloseTo(expected[i] as number, 5);
        expect(Math.hypot(...output)).toBeCloseTo(1, 5);
        await session.release();
      });
    }
  }

  it('uses 1 + 4 + 9 overlapping R-MAC regions on a 14 × 14 map, covering it', () => {
    expect(rmacRegions(14)).toEqual([
      { side: 14, stride: 1 },
      { side: 9, stride: 5 },
      { side: 7, stride: 3 },
    ]);
  });

  it('names every head node under embedding/ (the fp32 tail a quantizer leaves alone)', () => {
    const head = embeddingHead({
      features: 'maps',
      output: 'embedding',
      opset: 13,
      descriptor: 'rmac',
      mapSize: 14,
    });
    expect(head.nodes.every((n) => n.name?.startsWith('embedding/'))).toBe(true);
  });
});
