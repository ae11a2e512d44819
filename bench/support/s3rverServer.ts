/**
 * Runs s3rver in this process on 127.0.0.1 (free port) for the benchmarks, which start it
 * as a child process (`childS3rver.ts`) so the server gets its own event loop. Usage:
 * `node --openssl-legacy-provider --import tsx bench/support/s3rverServer.ts <dir> <bucket>...`;
 * prints `{"port":N}` on one line once listening and runs until killed.
 */
import type { AddressInfo } from "node:net"
import { createRequire } from "node:module"

type S3rverConstructor = new (options: {
  address: string
  port: number
  silent: boolean
  directory: string
  configureBuckets: ReadonlyArray<{ name: string }>
}) => { run(): Promise<AddressInfo> }

const S3rver = createRequire(import.meta.url)("s3rver") as S3rverConstructor
const [directory, ...buckets] = process.argv.slice(2)
if (directory === undefined) throw new Error("usage: s3rverServer.ts <directory> <bucket>...")
const server = new S3rver({
  address: "127.0.0.1",
  port: 0,
  silent: true,
  directory,
  configureBuckets: buckets.map((name) => ({ name }))
})
const address = await server.run()
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`)
