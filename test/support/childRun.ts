/** Collecting what a spawned child process printed, as an Effect that kills it when interrupted. */
import { Effect } from "effect"
import type { ChildProcess } from "node:child_process"

/** What a child process printed and its exit code. */
export interface ChildRun {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/**
 * Waits for `child` (spawned with piped stdout and stderr) to end, collecting its output;
 * `onStdout` sees all of stdout so far each time more arrives (e.g. to send a signal).
 * Interrupting the effect kills the child.
 */
export const collectChild = (
  child: ChildProcess,
  onStdout?: (stdout: string, kill: (signal: NodeJS.Signals) => void) => void
): Effect.Effect<ChildRun> =>
  Effect.async<ChildRun>((resume) => {
    let stdout = ""
    let stderr = ""
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString()
      onStdout?.(stdout, (signal) => child.kill(signal))
    })
    child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()))
    child.on("close", (code) => resume(Effect.succeed({ code, stdout, stderr })))
    return Effect.sync(() => child.kill("SIGKILL"))
  })
