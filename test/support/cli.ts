/**
 * The `trainer-sdk` CLI run two ways: in-process through its entry (`runTrainerSdkCli`) with a
 * recording terminal and the environment given as a `ConfigProvider` (fast: most CLI tests),
 * and spawned as `node` on the compiled `src/cli.ts` (the program edge: one smoke test per command).
 */
import { NodeContext } from "@effect/platform-node"
import { ConfigProvider, Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { CliTerminal, runTrainerSdkCli } from "../../src/internal/cliCommands.js"
import { type ChildRun, collectChild } from "./childRun.js"
import { compiledScript } from "./compiledScripts.js"

/** What a CLI run printed and its exit code. */
export type CliRun = ChildRun

/** An in-process run also keeps every progress line shown, in order. */
export interface InProcessCliRun extends CliRun {
  readonly progress: ReadonlyArray<string>
}

/** The repository root (the spawned CLI's working directory). */
export const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

/**
 * Runs `trainer-sdk ...args` in this process. `env` is the whole environment the CLI sees
 * (nothing of the test process's own). stdout and stderr are recorded as the process edge
 * writes them to pipes: one line per `out`/`err`, the last progress line kept on stderr when
 * the progress ends; `colour` is whether the terminal allows ANSI colours.
 */
export const runCliInProcess = (
  args: ReadonlyArray<string>,
  env: Readonly<Record<string, string>> = {},
  options: { readonly colour?: boolean } = {}
): Effect.Effect<InProcessCliRun> =>
  Effect.suspend(() => {
    let stdout = ""
    let stderr = ""
    let shown: string | undefined
    const progress: Array<string> = []
    const endProgress = () => {
      if (shown !== undefined) stderr += `${shown}\n`
      shown = undefined
    }
    const terminal = Layer.succeed(CliTerminal, {
      out: (text) => Effect.sync(() => (stdout += `${text}\n`)),
      err: (text) =>
        Effect.sync(() => {
          endProgress()
          stderr += `${text}\n`
        }),
      progress: (line) =>
        Effect.sync(() => {
          progress.push(line)
          shown = line
        }),
      endProgress: Effect.sync(endProgress),
      colour: options.colour ?? false
    })
    return runTrainerSdkCli(["node", "trainer-sdk", ...args]).pipe(
      Effect.map((code) => ({ code, stdout, stderr, progress })),
      Effect.provide(Layer.merge(NodeContext.layer, terminal)),
      Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))
    )
  })

/** Starts `trainer-sdk ...args` as a child process (`node` on the compiled `src/cli.ts`), output piped. */
export const spawnCli = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  spawn(process.execPath, ["--openssl-legacy-provider", compiledScript("src/cli.ts"), ...args], {
    cwd: repoRoot,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdio: ["ignore", "pipe", "pipe"]
  })

/** Runs `trainer-sdk ...args` in a child process to its end. */
export const runCliProcess = (args: ReadonlyArray<string>, env: Readonly<Record<string, string>> = {}) =>
  collectChild(spawnCli(args, env))
