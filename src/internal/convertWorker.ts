/**
 * The conversion worker thread (see `converterThread`): runs one conversion on Node's file
 * system with the same code as the caller's thread would, answers once, then ends. Its module
 * graph takes `@effect/platform` modules by path (not the package index, which loads the HTTP
 * stack and undici), so a worker starts in a fraction of the time.
 */
import * as NodeFileSystem from "@effect/platform-node/NodeFileSystem"
import * as NodePath from "@effect/platform-node/NodePath"
import { Cause, Effect, Exit, Fiber, Option } from "effect"
import { parentPort } from "node:worker_threads"
import type { ConversionReport } from "../Converter.js"
import type { DatasetError } from "../Errors.js"
import { makeConvertHere } from "./converterRun.js"
import type { DatasetErrorFields, WorkerReply, WorkerRequest } from "./converterThread.js"

const port = parentPort!

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

port.once("message", (request: WorkerRequest) => {
  if (request._tag !== "Convert") return port.close()
  const fiber = Effect.runFork(
    Effect.flatMap(makeConvertHere(true), (convert) => convert(request.options)).pipe(Effect.provide([NodeFileSystem.layer, NodePath.layer]))
  )
  port.on("message", (next: WorkerRequest) => {
    if (next._tag === "Interrupt") Effect.runFork(Fiber.interrupt(fiber))
  })
  fiber.addObserver((exit) => {
    port.postMessage(replyOf(exit))
    port.close()
  })
})
