#!/usr/bin/env node
/**
 * `trainer-sdk`: the command line of the SDK (`trainer-sdk --help`). The program edge: it
 * binds the CLI's output to the process streams, runs it with the Node runtime (Ctrl-C
 * interrupts the running command cleanly) and sets the exit code.
 *
 * @since 0.1.0
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Layer } from "effect"
import { CliTerminal, runTrainerSdkCli } from "./internal/cliCommands.js"

/** Progress lines are redrawn in place on a terminal; elsewhere printed at most once a second. */
const processTerminal = Layer.sync(CliTerminal, () => {
  const interactive = process.stderr.isTTY === true
  let shown: string | undefined
  let lastPrinted = 0
  const writeErr = (text: string) => process.stderr.write(text)
  const endProgress = () => {
    if (shown === undefined) return
    writeErr(interactive ? "\n" : `${shown}\n`)
    shown = undefined
  }
  return {
    out: (text) => Effect.sync(() => {
      if (interactive) endProgress()
      process.stdout.write(`${text}\n`)
    }),
    err: (text) => Effect.sync(() => {
      endProgress()
      writeErr(`${text}\n`)
    }),
    progress: (line) => Effect.sync(() => {
      if (interactive) {
        writeErr(`\r\u001b[K${line}`)
        shown = line
        return
      }
      const now = Date.now()
      if (now - lastPrinted >= 1000) {
        writeErr(`${line}\n`)
        lastPrinted = now
        shown = undefined
      } else {
        shown = line
      }
    }),
    endProgress: Effect.sync(endProgress),
    colour: process.stdout.isTTY === true && (process.env.NO_COLOR ?? "") === ""
  }
})

// The AWS SDK warns on every run under Node 20 about its future support policy; a CLI's
// stderr is for the command's own messages (set the variable to "false" to see it).
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true"

runTrainerSdkCli(process.argv).pipe(
  Effect.flatMap((code) => Effect.sync(() => { process.exitCode = code })),
  Effect.provide(Layer.merge(NodeContext.layer, processTerminal)),
  NodeRuntime.runMain({ disableErrorReporting: true })
)
