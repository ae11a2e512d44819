/**
 * A local S3-compatible server for integration tests: `s3rver` on 127.0.0.1, a free port,
 * a fresh temp directory, the given buckets created, closed (stragglers dropped) with the
 * scope. Paginated listings need the process to run with `--openssl-legacy-provider`
 * (vitest.config.ts sets it for the forks).
 */
import type { S3ClientConfig } from "@aws-sdk/client-s3"
import { Effect, Redacted, type Scope } from "effect"
import { mkdtemp, rm } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { s3rverAccessKey, startLocalS3Server } from "../../examples/localS3.js"

/** A running local S3 server. */
export interface LocalS3 {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string
  /** Where the server keeps its objects. */
  readonly directory: string
  /** Plain client settings that work against it (key id `S3RVER`, path-style, `WHEN_REQUIRED`). */
  readonly clientConfig: S3ClientConfig
  /** The same as endpoint settings for `JobContext` (`accessKey` `S3RVER`). */
  readonly accessKey: string
  readonly secretKey: Redacted.Redacted<string>
}

/** Starts s3rver on 127.0.0.1 with `buckets` created; stopped and its directory removed when the scope closes. */
export const startS3rver = (buckets: ReadonlyArray<string>): Effect.Effect<LocalS3, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      const directory = await mkdtemp(path.join(os.tmpdir(), "s3rver-"))
      const server = await startLocalS3Server(directory, buckets)
      return { server, directory, endpoint: server.endpoint }
    }),
    ({ directory, server }) =>
      Effect.promise(async () => {
        await server.close()
        await rm(directory, { recursive: true, force: true })
      })
  ).pipe(Effect.map(({ directory, endpoint }) => {
    const accessKey = s3rverAccessKey
    const secretKey = Redacted.make(s3rverAccessKey)
    return {
      endpoint,
      directory,
      accessKey,
      secretKey,
      clientConfig: {
        endpoint,
        region: "us-east-1",
        forcePathStyle: true,
        credentials: { accessKeyId: accessKey, secretAccessKey: Redacted.value(secretKey) },
        requestChecksumCalculation: "WHEN_REQUIRED"
      }
    }
  }))
