/**
 * Runs s3rver in this process on 127.0.0.1 (free port) for the benchmarks, which start it
 * as a child process (`childS3rver.ts`) so the server gets its own event loop. Usage:
 * `node --openssl-legacy-provider --import tsx bench/support/s3rverServer.ts <dir> <bucket>...`;
 * prints `{"port":N}` on one line once listening and runs until killed.
 */
import { startLocalS3Server } from "../../examples/localS3.js"

const [directory, ...buckets] = process.argv.slice(2)
if (directory === undefined) throw new Error("usage: s3rverServer.ts <directory> <bucket>...")
const server = await startLocalS3Server(directory, buckets)
process.stdout.write(`${JSON.stringify({ port: server.port })}\n`)
