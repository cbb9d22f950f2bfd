import { z } from 'zod';

const required = (name: string) => z.string({ error: `${name} is missing` }).min(1, `${name} is empty`);

/**
 * Cloud configuration, read once from the environment (the CDK stack sets these; tests point them at
 * the emulators). A bad environment fails at start with one message naming every bad variable.
 */
const CloudEnv = z
  .object({
    IMAGES_BUCKET: required('IMAGES_BUCKET'),
    IMAGE_PREFIX: z.string().default('images/'),
    THUMBNAIL_PREFIX: z.string().default('thumbnails/'),
    QUEUE_URL: required('QUEUE_URL').pipe(z.url({ error: 'QUEUE_URL is not a URL' })),
    TABLE_NAME: required('TABLE_NAME'),
    MILVUS_ADDRESS: required('MILVUS_ADDRESS'),
    MILVUS_TOKEN_SECRET_ARN: z.string().min(1).optional(),
    MILVUS_TOKEN: z.string().min(1).optional(),
    MILVUS_COLLECTION: z
      .string()
      .regex(/^[A-Za-z_][A-Za-z0-9_]{0,254}$/, 'MILVUS_COLLECTION must be letters, digits and _')
      .default('pic_search'),
    PIC_MODEL_MANIFEST: required('PIC_MODEL_MANIFEST'),
    AWS_REGION: required('AWS_REGION'),
    AWS_ENDPOINT_URL: z.url({ error: 'AWS_ENDPOINT_URL is not a URL' }).optional(),
    URL_EXPIRES_SECONDS: z.coerce.number().int().min(60).max(604_800).default(3600),
  })
  .refine((env) => env.IMAGE_PREFIX !== env.THUMBNAIL_PREFIX, {
    message: 'IMAGE_PREFIX and THUMBNAIL_PREFIX must differ (thumbnails would be ingested as images)',
    path: ['THUMBNAIL_PREFIX'],
  });

export interface CloudConfig {
  bucket: string;
  imagePrefix: string;
  thumbnailPrefix: string;
  queueUrl: string;
  tableName: string;
  milvus: {
    address: string;
    collection: string;
    /** Secrets Manager secret holding the Zilliz API key / Milvus "user:password" token (cloud). */
    tokenSecretArn?: string;
    /** The token itself (local runs); neither is needed for a Milvus without auth such as Milvus Lite. */
    token?: string;
  };
  modelManifest: string;
  region: string;
  /** Emulators only (moto): every AWS client talks to this endpoint. */
  awsEndpoint?: string;
  urlExpiresSeconds: number;
}

export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

export function loadCloudConfig(env: NodeJS.ProcessEnv = process.env): CloudConfig {
  const parsed = CloudEnv.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) =>
      issue.message.includes(String(issue.path[0] ?? ''))
        ? issue.message
        : `${String(issue.path[0])}: ${issue.message}`,
    );
    throw new ConfigurationError(`Invalid cloud configuration: ${problems.join('; ')}`);
  }
  const e = parsed.data;
  return {
    bucket: e.IMAGES_BUCKET,
    imagePrefix: e.IMAGE_PREFIX,
    thumbnailPrefix: e.THUMBNAIL_PREFIX,
    queueUrl: e.QUEUE_URL,
    tableName: e.TABLE_NAME,
    milvus: {
      address: e.MILVUS_ADDRESS,
      collection: e.MILVUS_COLLECTION,
      ...(e.MILVUS_TOKEN_SECRET_ARN ? { tokenSecretArn: e.MILVUS_TOKEN_SECRET_ARN } : {}),
      ...(e.MILVUS_TOKEN ? { token: e.MILVUS_TOKEN } : {}),
    },
    modelManifest: e.PIC_MODEL_MANIFEST,
    region: e.AWS_REGION,
    ...(e.AWS_ENDPOINT_URL ? { awsEndpoint: e.AWS_ENDPOINT_URL } : {}),
    urlExpiresSeconds: e.URL_EXPIRES_SECONDS,
  };
}
