/**
 * Starts s3rver in its own Node process (with `--openssl-legacy-provider`, needed for its
 * paginated listings) in a fresh temp directory, and stops it and removes the directory.
 */
import { spawn } from "node:child_process"
import { mkdtemp, rm } from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** A running child-process s3rver. */
export interface ChildS3rver {
  readonly endpoint: string
  readonly directory: string
  readonly pid: number
  readonly stop: () => Promise<void>
}

/** Spawns the server with `buckets` created and resolves once it listens. */
export const startChildS3rver = async (buckets: ReadonlyArray<string>): Promise<ChildS3rver> => {
  const directory = await mkdtemp(path.join(os.tmpdir(), "bench-s3rver-"))
  const script = fileURLToPath(new URL("./s3rverServer.ts", import.meta.url))
  const child = spawn(process.execPath, ["--openssl-legacy-provider", "--import", "tsx", script, directory, ...buckets], {
    stdio: ["ignore", "pipe", "inherit"]
  })
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = ""
    child.stdout.on("data", (chunk: Buffer) => {
      buffered += chunk.toString()
      const line = buffered.split("\n").find((l) => l.startsWith("{"))
      if (line) resolve((JSON.parse(line) as { port: number }).port)
    })
    child.once("exit", (code) => reject(new Error(`s3rver exited early with code ${code}`)))
  })
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    pid: child.pid!,
    stop: async () => {
      const exited = new Promise((resolve) => child.once("exit", resolve))
      child.kill("SIGTERM")
      await exited
      await rm(directory, { recursive: true, force: true })
    }
  }
}
