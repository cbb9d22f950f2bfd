import type { ImageInspector, ImageProcessor, ProcessedImage } from '../domain/ports.ts';
import { Semaphore } from '../embedder/semaphore.ts';
import type { ModelManifest, PreprocessProfile } from '../model/manifest.ts';
import {
  DEFAULT_DECODE_LIMITS,
  type DecodeLimits,
  inspectImage,
  type RgbImage,
  webpThumbnail,
} from './decode.ts';
import {
  createTensorWriter,
  decodeForModel,
  modelPixelsOf,
  type TensorSpec,
  type TensorWriter,
  THUMBNAIL_SIZE,
  tensorSpecOf,
} from './preprocess.ts';

/** The upload check on sharp: the header only, against `limits`. */
export function imageInspector(limits: DecodeLimits): ImageInspector {
  return {
    async inspect(bytes) {
      await inspectImage(bytes, limits);
    },
  };
}

export interface ImageProcessorOptions {
  tensor: TensorSpec;
  profile: PreprocessProfile;
  limits: DecodeLimits;
  /**
   * Full-resolution decodes in flight for `keras-compat` (it cannot shrink on load): bounds memory to
   * about this many decoded originals. `quality` decodes small and is not bounded. @default 4
   */
  fullDecodeConcurrency?: number;
}

/**
 * The ImageProcessor port on sharp/libvips (src/imaging/decode.ts is the only module that imports
 * sharp). Each image is decoded once (decodeForModel); the model's tensor and the thumbnail are both
 * made from those pixels. Queries and ingest take the same path, so a photo finds itself at score 1.
 */
export class SharpImageProcessor implements ImageProcessor {
  readonly #options: ImageProcessorOptions;
  readonly #writer: TensorWriter;
  readonly #fullDecodes: Semaphore | undefined;

  /** The processor of a model's input: its tensor and profile, the default decode limits unless given. */
  static forModel(
    manifest: ModelManifest,
    options: Partial<Omit<ImageProcessorOptions, 'tensor'>> = {},
  ): SharpImageProcessor {
    return new SharpImageProcessor({
      tensor: tensorSpecOf(manifest),
      profile: manifest.profile,
      limits: DEFAULT_DECODE_LIMITS,
      ...options,
    });
  }

  constructor(options: ImageProcessorOptions) {
    this.#options = options;
    this.#writer = createTensorWriter(options.tensor);
    this.#fullDecodes =
      options.profile === 'keras-compat' ? new Semaphore(options.fullDecodeConcurrency ?? 4) : undefined;
  }

  /** How the tensor is laid out (the load-time probe writes its own pixels with it). */
  get writer(): TensorWriter {
    return this.#writer;
  }

  async inspect(bytes: Uint8Array): Promise<void> {
    await inspectImage(bytes, this.#options.limits);
  }

  process(bytes: Uint8Array, options: { thumbnail: boolean }): Promise<ProcessedImage> {
    return this.#decoded(bytes, async (image, { profile, tensor: spec }) => {
      const [pixels, webp] = await Promise.all([
        modelPixelsOf(image, profile, spec.size),
        // A thumbnail that cannot be encoded costs the image its thumbnail, not its vector.
        options.thumbnail ? webpThumbnail(image, THUMBNAIL_SIZE).catch(() => undefined) : undefined,
      ]);
      const tensor = new Float32Array(this.#writer.length);
      this.#writer.write(pixels, tensor, 0);
      return webp ? { tensor, thumbnail: webp } : { tensor };
    });
  }

  /** The model's size×size RGB pixels (HWC) alone: the query's dihedral variants are made from them. */
  pixels(bytes: Uint8Array): Promise<Uint8Array> {
    return this.#decoded(bytes, (image, { profile, tensor: spec }) =>
      modelPixelsOf(image, profile, spec.size),
    );
  }

  /** Decodes once and hands the pixels to `use`, within the full-decode bound for `keras-compat`. */
  #decoded<T>(
    bytes: Uint8Array,
    use: (image: RgbImage, options: ImageProcessorOptions) => Promise<T>,
  ): Promise<T> {
    const { profile, tensor: spec, limits } = this.#options;
    const run = async () => use(await decodeForModel(bytes, profile, spec.size, limits), this.#options);
    return this.#fullDecodes ? this.#fullDecodes.run(run) : run();
  }
}
