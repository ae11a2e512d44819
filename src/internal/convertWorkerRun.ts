/**
 * The conversion worker's run (see `convertWorker`): the conversion with the same code as the
 * caller's thread would run, on Node's file system. Its module graph takes `@effect/platform`
 * modules by path (not the package index, which loads the HTTP stack and undici), so it loads
 * in a fraction of the time.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import type { MessagePort } from "node:worker_threads"
import type { ConversionReport, ConvertOptions } from "../Converter.js"
import type { DatasetError } from "../Errors.js"
import { makeConvertHere } from "./converterRun.js"
import type { DatasetErrorFields, WorkerReply } from "./converterThread.js"
import type { ReadAhead } from "./readAhead.js"

/** A `DatasetError`'s fields, without the absent ones. */
const fieldsOf = (e: DatasetError): DatasetErrorFields => ({
  reason: e.reason,
  detail: e.detail,
  ...(e.file === undefined ? {} : { file: e.file }),
  ...(e.jsonPath === undefined ? {} : { jsonPath: e.jsonPath }),
  ...(e.paths === undefined ? {} : { paths: [...e.paths] })
})

const replyOf = (exit: Exit.Exit<ConversionReport, DatasetError>): WorkerReply => {
  if (Exit.isSuccess(exit)) return { _tag: "Done", report: exit.value }
  const failure = Cause.failureOption(exit.cause)
  if (Option.isSome(failure)) return { _tag: "Failed", error: fieldsOf(failure.value) }
  if (Cause.isInterruptedOnly(exit.cause)) return { _tag: "Interrupted" }
  return { _tag: "Defect", message: Cause.pretty(exit.cause) }
}

/**
 * Runs the conversion (its helper thread `readAhead`'s, when one was started), answers on
 * `port` once and closes it: the function that interrupts it.
 */
export const runConversion = (port: MessagePort, options: ConvertOptions, readAhead: ReadAhead | undefined): () => void => {
  const fiber = Effect.runFork(
    Effect.flatMap(makeConvertHere(true), (convert) => convert(options, readAhead)).pipe(
      Effect.provide([NodeFileSystem.layer, NodePath.layer])
    )
  )
  fiber.addObserver((exit) => {
    port.postMessage(replyOf(exit))
    port.close()
  })
  return () => void Effect.runFork(Fiber.interrupt(fiber))
}
