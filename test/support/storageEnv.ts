/**
 * `Storage.layer` as a job builds it, from its own variables only: both stores' endpoint,
 * keys and bucket, and the job id (checkpoint keys), given as a `ConfigProvider` map.
 */
import { ConfigProvider, Layer, Redacted } from "effect"
import { Storage } from "../../src/Storage.js"

/** One S3 endpoint with its credentials. */
export interface StorageEndpointVariables {
  readonly endpoint: string
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string> | string
}

/** The storage variables for both stores at `endpoint` (buckets as given), and `JOB_ID` when given. */
export const storageVariables = (
  endpoint: StorageEndpointVariables,
  buckets: { readonly external: string; readonly internal?: string },
  jobId?: number
): Record<string, string> => {
  const secret = typeof endpoint.secretKey === "string" ? endpoint.secretKey : Redacted.value(endpoint.secretKey)
  return {
    EXTERNAL_STORAGE_ENDPOINT: endpoint.endpoint,
    EXTERNAL_STORAGE_ACCESS_KEY: endpoint.accessKey,
    EXTERNAL_STORAGE_SECRET_KEY: secret,
    EXTERNAL_BUCKET_DATASETS: buckets.external,
    INTERNAL_STORAGE_ENDPOINT: endpoint.endpoint,
    INTERNAL_STORAGE_ACCESS_KEY: endpoint.accessKey,
    INTERNAL_STORAGE_SECRET_KEY: secret,
    INTERNAL_BUCKET_CHECKPOINTS: buckets.internal ?? "training-checkpoints",
    ...(jobId === undefined ? {} : { JOB_ID: String(jobId) })
  }
}

/** `Storage.layer` reading `variables` (and nothing else). */
export const storageLayerFrom = (variables: Record<string, string>) =>
  Storage.layer.pipe(Layer.provide(Layer.setConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(variables))))))
