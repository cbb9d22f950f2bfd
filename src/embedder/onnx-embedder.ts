import { availableParallelism } from 'node:os';
import { performance } from 'node:perf_hooks';
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import { ImageError } from '../domain/errors.ts';
import type {
  Embedder,
  EmbedderInfo,
  EmbedOptions,
  EmbedOutcome,
  EmbedTimings,
  ProcessedImage,
} from '../domain/ports.ts';
import type { DecodeLimits } from '../imaging/decode.ts';
import { dihedralVariants } from '../imaging/dihedral.ts';
import { SharpImageProcessor } from '../imaging/image-processor.ts';
import { toFloat16 } from '../model/float16.ts';
import { embedderInfoOf, type LoadedManifest, type PreprocessProfile } from '../model/manifest.ts';
import { verifyModelFile } from '../model/model-files.ts';
import { l2Normalise, whiten } from './vectors.ts';

export type ExecutionProvider = 'cuda' | 'cpu';

export interface OnnxEmbedderOptions {
  /** Images per inference call. */
  batchSize?: number;
  /** Threads inside one operator (the convolutions); the default is one per core. */
  intraOpNumThreads?: number;
  /** Threads across independent operators; VGG16 is a chain, so 1. */
  interOpNumThreads?: number;
  graphOptimizationLevel?: 'disabled' | 'basic' | 'extended' | 'all';
  executionMode?: 'sequential' | 'parallel';
  enableCpuMemArena?: boolean;
  enableMemPattern?: boolean;
  /**
   * Whether idle intra-op threads busy-wait for the next operator. Spinning saves microseconds between
   * operators but burns cores that the decoders (and any neighbour process) could use.
   */
  allowSpinning?: boolean;
  /** Tried in order, then 'cpu' (a failed 'cuda' is logged); only 'cuda' when `requireGpu`. */
  executionProviders?: ExecutionProvider[];
  /** Refuse to start without the GPU (the GPU worker): silently running on CPU is the failure to avoid. */
  requireGpu?: boolean;
  /** Overrides the manifest's profile, e.g. to re-embed an index built with the other one. */
  profile?: PreprocessProfile;
  limits?: DecodeLimits;
  /**
   * Full-resolution decodes in flight for `keras-compat` (it cannot shrink on load): bounds memory to
   * about this many decoded originals. `quality` decodes straight to the model size and is not bounded.
   */
  fullDecodeConcurrency?: number;
  /**
   * The fp32 model to open instead, said loudly in the log, when this one (an int8 model, chooseModel)
   * fails to load or to pass the load-time checks.
   */
  fallback?: LoadedManifest;
  logger?: Logger;
}

/**
 * Settings chosen with `npm run bench:embed` on the 2-core CPU machine (docs/performance.md): all graph
 * optimisations (basic/extended/disabled cost 15–45% more CPU per image), sequential execution (parallel
 * cost ~50% more), arena and memory pattern on, spinning on (off was no better), one intra-op thread per
 * core. Batch 8 and 32 were within noise of each other; 8 holds a quarter of the activations in memory.
 */
export const DEFAULT_EMBEDDER_OPTIONS = {
  batchSize: 8,
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  executionMode: 'sequential',
  enableCpuMemArena: true,
  enableMemPattern: true,
  allowSpinning: true,
  executionProviders: ['cpu'],
  requireGpu: false,
  fullDecodeConcurrency: 4,
} as const satisfies OnnxEmbedderOptions;

/** A deterministic, non-constant probe image for the load-time checks (a constant one can give a zero vector). */
function probePixels(size: number): Uint8Array {
  const pixels = new Uint8Array(size * size * 3);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (i * 37 + ((i / 3) | 0) * 11) % 256;
  return pixels;
}

interface PreparedBatch {
  /** Positions in the caller's array of the images that decoded, in tensor order. */
  positions: number[];
  tensor: Float32Array;
  thumbnails: (Uint8Array | undefined)[];
}

/** onnxruntime-node + sharp implementation of the Embedder port; the worker and search share it. */
export class OnnxEmbedder implements Embedder {
  private constructor(
    readonly info: EmbedderInfo,
    private readonly session: ort.InferenceSession,
    private readonly loaded: LoadedManifest,
    private readonly images: SharpImageProcessor,
    private readonly batchSize: number,
  ) {}

  /**
   * Creates the session, picks the provider, and checks the model against its manifest; with a
   * `fallback`, a model that fails any of that is refused with an error in the log and the fallback opened.
   */
  static async create(loaded: LoadedManifest, options: OnnxEmbedderOptions = {}): Promise<OnnxEmbedder> {
    const { fallback, ...rest } = options;
    if (!fallback) return OnnxEmbedder.#open(loaded, rest);
    try {
      return await OnnxEmbedder.#open(loaded, rest);
    } catch (error) {
      options.logger?.error(
        { err: error, refused: loaded.modelPath, instead: fallback.modelPath },
        `INT8 MODEL REFUSED at load: ${(error as Error).message} Using the fp32 model ${fallback.modelPath} instead.`,
      );
      return OnnxEmbedder.#open(fallback, rest);
    }
  }

  static async #open(loaded: LoadedManifest, options: OnnxEmbedderOptions): Promise<OnnxEmbedder> {
    const settings = { ...DEFAULT_EMBEDDER_OPTIONS, ...options };
    const { manifest } = loaded;
    const log = options.logger;
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      intraOpNumThreads: settings.intraOpNumThreads ?? availableParallelism(),
      interOpNumThreads: settings.interOpNumThreads,
      graphOptimizationLevel: settings.graphOptimizationLevel,
      executionMode: settings.executionMode,
      enableCpuMemArena: settings.enableCpuMemArena,
      enableMemPattern: settings.enableMemPattern,
      // Session config entries (onnxruntime_session_options_config_keys.h), flattened by the binding.
      extra: { session: { intra_op: { allow_spinning: settings.allowSpinning ? '1' : '0' } } },
    };
    const started = performance.now();
    await verifyModelFile(loaded);
    const { session, provider } = await openSession(loaded.modelPath, sessionOptions, settings, log);
    const profile = settings.profile ?? manifest.profile;
    const info = embedderInfoOf(manifest, provider, profile);
    const images = SharpImageProcessor.forModel(manifest, {
      profile,
      ...(settings.limits ? { limits: settings.limits } : {}),
      fullDecodeConcurrency: settings.fullDecodeConcurrency,
    });
    const embedder = new OnnxEmbedder(info, session, loaded, images, settings.batchSize);
    await embedder.checkModel();
    log?.info(
      {
        model: manifest.name,
        precision: manifest.quantization ? 'int8' : manifest.input.dataType,
        file: loaded.modelPath,
        provider,
        profile,
        pretrained: manifest.pretrained,
        batchSize: settings.batchSize,
        intraOpNumThreads: sessionOptions.intraOpNumThreads,
        loadMs: Math.round(performance.now() - started),
      },
      `embedder ready on ${provider}`,
    );
    if (!manifest.pretrained) {
      log?.warn(
        { model: manifest.name },
        'SEEDED (random, untrained) weights: vectors are stable but not meaningful; run `npm run model:fetch` for real search',
      );
    }
    return embedder;
  }

  /** The model must take the manifest's input and give [N, dimension] (L2-normalised when it says so). */
  private async checkModel(): Promise<void> {
    const { input, output } = this.loaded.manifest;
    if (!this.session.inputNames.includes(input.name) || !this.session.outputNames.includes(output.name)) {
      throw new Error(
        `Model ${this.loaded.modelPath} has inputs [${this.session.inputNames}] and outputs [${this.session.outputNames}]; its manifest names '${input.name}' → '${output.name}'.`,
      );
    }
    const tensor = new Float32Array(this.images.writer.length);
    this.images.writer.write(probePixels(input.size), tensor, 0);
    const [vector] = await this.infer(tensor, 1, false);
    if (vector?.length !== output.dimension) {
      throw new Error(
        `Model ${this.loaded.modelPath} gives ${vector?.length}-dimensional vectors; its manifest says ${output.dimension}.`,
      );
    }
    if (output.l2Normalised) {
      const norm = Math.hypot(...vector);
      if (Math.abs(norm - 1) > 1e-3) {
        throw new Error(
          `Model ${this.loaded.modelPath} is declared L2-normalised but gave a vector of norm ${norm}.`,
        );
      }
    }
  }

  /**
   * Runs the model on `count` preprocessed images (NCHW, as TensorWriter writes them); vectors are copies.
   * Public for the benchmark, which times inference apart from decoding.
   */
  async infer(tensor: Float32Array, count: number, normalise = !this.loaded.manifest.output.l2Normalised) {
    const { input, output } = this.loaded.manifest;
    const size = input.size;
    const feed =
      input.dataType === 'float16'
        ? new ort.Tensor('float16', toFloat16(tensor), [count, 3, size, size])
        : new ort.Tensor('float32', tensor, [count, 3, size, size]);
    const results = await this.session.run({ [input.name]: feed }, [output.name]);
    const result = results[output.name];
    if (!result) throw new Error(`The model returned no '${output.name}' output.`);
    const values =
      result.type === 'float16'
        ? Float32Array.from(result.data as Uint16Array, float16ToNumber)
        : (result.data as Float32Array);
    result.dispose();
    const dimension = values.length / count;
    const { whitening } = this.loaded;
    if (whitening && dimension !== whitening.inputDimension) {
      throw new Error(
        `Model ${this.loaded.modelPath} gives ${dimension}-dimensional descriptors; its whitening expects ${whitening.inputDimension}.`,
      );
    }
    return Array.from({ length: count }, (_, i) => {
      const vector = values.slice(i * dimension, (i + 1) * dimension);
      if (whitening) return l2Normalise(whiten(vector, whitening));
      return normalise ? l2Normalise(vector) : vector;
    });
  }

  /** Decodes one batch; failures become outcomes at their position, the rest go into one tensor. */
  private async prepare(
    images: Uint8Array[],
    start: number,
    outcomes: EmbedOutcome[],
    thumbnail: boolean,
  ): Promise<PreparedBatch> {
    const processed = await Promise.all(
      images.map((image, i) =>
        this.images.process(image, { thumbnail }).catch((error: unknown) => {
          outcomes[start + i] = failureOf(error);
          return undefined;
        }),
      ),
    );
    const decoded = processed.filter((image): image is ProcessedImage => image !== undefined);
    const length = this.images.writer.length;
    const tensor = new Float32Array(length * decoded.length);
    for (const [i, image] of decoded.entries()) tensor.set(image.tensor, i * length);
    const positions = processed.flatMap((image, i) => (image ? [start + i] : []));
    return { positions, tensor, thumbnails: decoded.map((image) => image.thumbnail) };
  }

  async embed(images: Uint8Array[], options: EmbedOptions = {}): Promise<EmbedOutcome[]> {
    const outcomes: EmbedOutcome[] = new Array(images.length);
    const starts = Array.from(
      { length: Math.ceil(images.length / this.batchSize) },
      (_, i) => i * this.batchSize,
    );
    const prepareAt = (start: number) =>
      this.prepare(images.slice(start, start + this.batchSize), start, outcomes, options.thumbnails === true);
    // Decoding runs on libuv/libvips threads: batch k+1 is queued before batch k's inference starts.
    let next = starts.length > 0 ? prepareAt(starts[0] as number) : undefined;
    for (let b = 0; b < starts.length; b++) {
      const batch = await (next as Promise<PreparedBatch>);
      next = b + 1 < starts.length ? prepareAt(starts[b + 1] as number) : undefined;
      if (batch.positions.length === 0) continue;
      try {
        const vectors = await this.infer(batch.tensor, batch.positions.length);
        for (const [i, position] of batch.positions.entries()) {
          const thumbnail = batch.thumbnails[i];
          const vector = vectors[i] as Float32Array;
          outcomes[position] = thumbnail ? { ok: true, vector, thumbnail } : { ok: true, vector };
        }
      } catch (error) {
        const reason = `Inference failed: ${(error as Error).message}`;
        for (const position of batch.positions)
          outcomes[position] = { ok: false, code: 'inference_failed', reason };
      }
    }
    return outcomes;
  }

  async embedOne(image: Uint8Array): Promise<{ vector: Float32Array; timings: EmbedTimings }> {
    const started = performance.now();
    const { tensor } = await this.images.process(image, { thumbnail: false });
    const decoded = performance.now();
    const [vector] = await this.infer(tensor, 1);
    const timings = { decodeMs: decoded - started, embedMs: performance.now() - decoded };
    return { vector: vector as Float32Array, timings };
  }

  async embedOrientations(image: Uint8Array): Promise<{ vectors: Float32Array[]; timings: EmbedTimings }> {
    const started = performance.now();
    const { writer } = this.images;
    const variants = dihedralVariants(await this.images.pixels(image), this.loaded.manifest.input.size);
    const tensor = new Float32Array(writer.length * variants.length);
    for (const [i, pixels] of variants.entries()) writer.write(pixels, tensor, i * writer.length);
    const decoded = performance.now();
    const vectors = await this.infer(tensor, variants.length);
    return { vectors, timings: { decodeMs: decoded - started, embedMs: performance.now() - decoded } };
  }

  async close(): Promise<void> {
    await this.session.release();
  }
}

function failureOf(error: unknown): EmbedOutcome {
  if (error instanceof ImageError) return { ok: false, code: error.kind, reason: error.message };
  return {
    ok: false,
    code: 'decode_failed',
    reason: `The image could not be decoded: ${(error as Error).message}`,
  };
}

async function openSession(
  modelPath: string,
  sessionOptions: ort.InferenceSession.SessionOptions,
  settings: { executionProviders: readonly ExecutionProvider[]; requireGpu: boolean },
  log: Logger | undefined,
): Promise<{ session: ort.InferenceSession; provider: ExecutionProvider }> {
  const providers: readonly ExecutionProvider[] = settings.requireGpu
    ? ['cuda']
    : [...new Set([...settings.executionProviders, 'cpu' as const])];
  const failures: string[] = [];
  for (const provider of providers) {
    try {
      const session = await ort.InferenceSession.create(modelPath, {
        ...sessionOptions,
        executionProviders: [provider],
      });
      return { session, provider };
    } catch (error) {
      failures.push(`${provider}: ${(error as Error).message}`);
      log?.warn({ provider, error: (error as Error).message }, `execution provider ${provider} unavailable`);
    }
  }
  if (settings.requireGpu) {
    throw new Error(`The GPU is required but the CUDA execution provider failed: ${failures.join('; ')}`);
  }
  throw new Error(`No execution provider could load ${modelPath}: ${failures.join('; ')}`);
}

function float16ToNumber(bits: number): number {
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  const sign = bits & 0x8000 ? -1 : 1;
  if (exponent === 0) return sign * 2 ** -14 * (mantissa / 1024);
  if (exponent === 0x1f) return mantissa ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * 2 ** (exponent - 15) * (1 + mantissa / 1024);
}
