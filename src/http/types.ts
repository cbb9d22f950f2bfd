import type { APIGatewayProxyEventV2, APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

/** API Gateway HTTP API payload v2: what Lambda receives and what the local server builds. */
export type HttpEvent = APIGatewayProxyEventV2;
export type HttpResult = APIGatewayProxyStructuredResultV2;
export type HttpHandler = (event: HttpEvent) => Promise<HttpResult>;

export interface HttpLimits {
  /** Largest single image (raw body or one multipart part). */
  maxImageBytes: number;
  /** Most files in one multipart upload. */
  maxFiles: number;
  /** Largest request body of any kind (a multipart upload of many images). */
  maxRequestBytes: number;
}

/**
 * Lambda's synchronous payload limit is 6 MB, so in the cloud larger images go through presigned uploads;
 * locally a phone photo of 25 MB still fits.
 */
export const DEFAULT_HTTP_LIMITS: HttpLimits = {
  maxImageBytes: 25 * 1024 * 1024,
  maxFiles: 100,
  maxRequestBytes: 256 * 1024 * 1024,
};

/**
 * Lambda takes at most 6 MB per synchronous request, and API Gateway base64-encodes binary bodies (4/3
 * larger), so a query image must stay under about 4.4 MB; bigger ones go through POST /uploads.
 */
export const CLOUD_HTTP_LIMITS: HttpLimits = {
  maxImageBytes: 4_400_000,
  maxFiles: 10,
  maxRequestBytes: 4_400_000,
};
