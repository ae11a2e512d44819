/**
 * A local S3-compatible server (`s3rver`, a development dependency) on 127.0.0.1, shared by
 * the embedded example, the tests and the benchmarks. The package is loaded only when a
 * server is started, so a production image (which does not install it) never needs it.
 */
import type { Server } from "node:http"
import { createRequire } from "node:module"
import type { AddressInfo } from "node:net"

/** s3rver checks request signatures against this access key id (any secret works). */
export const s3rverAccessKey = "S3RVER"

/** A running local S3 server. */
export interface LocalS3Server {
  /** `http://127.0.0.1:<port>`. */
  readonly endpoint: string
  readonly port: number
  /** Stops the server, dropping connections left open (its `close` waits for them). */
  readonly close: () => Promise<void>
}

interface S3rverInstance {
  run(): Promise<AddressInfo>
  close(): Promise<void>
  httpServer?: Server
}

type S3rverConstructor = new (options: {
  address: string
  port: number
  silent: boolean
  directory: string
  configureBuckets: ReadonlyArray<{ name: string }>
}) => S3rverInstance

/** Starts s3rver on 127.0.0.1 (a free port) keeping its objects in `directory`, with `buckets` created. */
export const startLocalS3Server = async (directory: string, buckets: ReadonlyArray<string>): Promise<LocalS3Server> => {
  const S3rver = createRequire(import.meta.url)("s3rver") as S3rverConstructor
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory,
    configureBuckets: buckets.map((name) => ({ name }))
  })
  const { port } = await server.run()
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: async () => {
      server.httpServer?.closeAllConnections()
      await server.close()
    }
  }
}
