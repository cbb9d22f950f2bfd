import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudfront from 'aws-cdk-lib/aws-cloudfront';
import * as origins from 'aws-cdk-lib/aws-cloudfront-origins';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import { Construct } from 'constructs';

/**
 * The page's Content-Security-Policy: its own scripts and styles only (no inline script, no eval), images
 * from itself or the blobs it fetched, requests to itself, the HTTP API and S3 (presigned links and
 * uploads) in the stack's region, and nothing framed, embedded or posted elsewhere. The API and bucket
 * hosts are wildcards because naming them would be a dependency cycle (the API's CORS and the bucket's
 * name the page's origin). No inline style either: the page sets styles through the CSSOM (web/src/view.ts).
 */
export function pageContentSecurityPolicy(region: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' blob:",
    `connect-src 'self' https://*.execute-api.${region}.amazonaws.com https://*.s3.${region}.amazonaws.com`,
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
    "object-src 'none'",
  ].join('; ');
}

export interface WebProps {
  accessLogs: s3.IBucket;
}

/**
 * The static web page: a private bucket served only through CloudFront (origin access control).
 * The distribution exists before the API so the API's CORS can name its origin; the page and its
 * config.json are deployed afterwards by `deploy()`, once the API URL is known.
 */
export class Web extends Construct {
  readonly bucket: s3.Bucket;
  readonly distribution: cloudfront.Distribution;
  readonly responseHeaders: cloudfront.ResponseHeadersPolicy;
  /** https://<id>.cloudfront.net */
  readonly origin: string;

  constructor(scope: Construct, id: string, props: WebProps) {
    super(scope, id);
    this.bucket = new s3.Bucket(this, 'Site', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogs,
      serverAccessLogsPrefix: 'web/',
      // Only build output lives here; `cdk deploy` recreates it.
      removalPolicy: RemovalPolicy.DESTROY,
      autoDeleteObjects: true,
    });
    this.responseHeaders = new cloudfront.ResponseHeadersPolicy(this, 'Headers', {
      comment: 'pic-search page: strict CSP and security headers',
      securityHeadersBehavior: {
        contentSecurityPolicy: {
          contentSecurityPolicy: pageContentSecurityPolicy(Stack.of(this).region),
          override: true,
        },
        strictTransportSecurity: {
          accessControlMaxAge: Duration.days(365),
          includeSubdomains: true,
          override: true,
        },
        contentTypeOptions: { override: true },
        frameOptions: { frameOption: cloudfront.HeadersFrameOption.DENY, override: true },
        referrerPolicy: { referrerPolicy: cloudfront.HeadersReferrerPolicy.NO_REFERRER, override: true },
      },
    });
    this.distribution = new cloudfront.Distribution(this, 'Distribution', {
      comment: 'pic-search web page',
      defaultRootObject: 'index.html',
      defaultBehavior: {
        origin: origins.S3BucketOrigin.withOriginAccessControl(this.bucket),
        viewerProtocolPolicy: cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
        responseHeadersPolicy: this.responseHeaders,
        cachePolicy: cloudfront.CachePolicy.CACHING_OPTIMIZED,
      },
      priceClass: cloudfront.PriceClass.PRICE_CLASS_100,
      httpVersion: cloudfront.HttpVersion.HTTP2_AND_3,
    });
    this.origin = `https://${this.distribution.distributionDomainName}`;
  }

  /** Uploads the built page plus the config.json it reads at start, then invalidates the cache. */
  deploy(webDist: string, config: { apiUrl: string }): s3deploy.BucketDeployment {
    return new s3deploy.BucketDeployment(this, 'Deploy', {
      destinationBucket: this.bucket,
      sources: [
        s3deploy.Source.asset(webDist),
        s3deploy.Source.jsonData('config.json', {
          apiUrl: config.apiUrl,
          mode: 'cloud',
          auth: { kind: 'bearer' },
        }),
      ],
      distribution: this.distribution,
      distributionPaths: ['/*'],
      prune: true,
      memoryLimit: 512,
      cacheControl: [s3deploy.CacheControl.maxAge(Duration.minutes(5))],
    });
  }
}
