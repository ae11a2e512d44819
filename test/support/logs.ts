/** Captures what the SDK logs, for tests of warnings (library code logs; only program edges print). */
import { Effect, Logger, LogLevel } from "effect"

/** A logger layer recording the messages of warnings and errors, and the recorded lines. */
export const captureWarnings = Effect.sync(() => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    if (logLevel.ordinal >= LogLevel.Warning.ordinal) lines.push((Array.isArray(message) ? message : [message]).join(" "))
  })
  return { logger: Logger.add(logger), lines }
})
