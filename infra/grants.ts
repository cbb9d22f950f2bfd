import * as iam from 'aws-cdk-lib/aws-iam';
import type * as s3 from 'aws-cdk-lib/aws-s3';

/**
 * Exact S3 verbs on key prefixes. CDK's bucket grants add wildcard action sets (s3:GetObject*,
 * s3:List*, s3:Abort*…); spelling the verbs out keeps every role to what its code calls.
 */
export type ObjectVerb = 's3:GetObject' | 's3:PutObject' | 's3:DeleteObject';

export function allowObjects(
  grantee: iam.IGrantable,
  bucket: s3.IBucket,
  verbs: ObjectVerb[],
  prefixes: string[],
): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({
      actions: verbs,
      resources: prefixes.map((prefix) => bucket.arnForObjects(`${prefix}*`)),
    }),
  );
}

/** ListObjectsV2 (backfill and delete-all walk a prefix). */
export function allowList(grantee: iam.IGrantable, bucket: s3.IBucket): void {
  grantee.grantPrincipal.addToPrincipalPolicy(
    new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }),
  );
}
