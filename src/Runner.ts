/**
 * The process runner of a trainer program: reports the start, runs the program over the
 * SDK layer, settles the outcome with the backend whatever happened (success, failure, a
 * signal, an invalid environment), closes everything and exits with the outcome's code.
 *
 * @since 0.1.0
 */
import { NodeHttpClient, NodeRuntime } from "@effect/platform-node"
import { Effect, type Layer } from "effect"
import type { CallbackOperation } from "./Callback.js"
import type { ConfigError, ErrorType } from "./Errors.js"
import { runTrainerWith } from "./internal/runner.js"
import { handleShutdownSignal } from "./internal/shutdown.js"
import { TrainerSdk, type TrainerServices } from "./TrainerSdk.js"

/** Options of `runTrainer` / `runTrainerEffect`. */
export interface TrainerRunOptions {
  /**
   * The job's operation: what the runner's start report announces and where a failure
   * raised before any start is routed. Default: the job's kind (from which of `JOB_ID`,
   * `INFERENCE_JOB_ID`, `EXPORT_JOB_ID`, `TEST_RUN_ID` is set).
   */
  readonly operation?: CallbackOperation
  /** `totalEpochs` of the runner's start report (default: the `epochs` config). */
  readonly totalEpochs?: number
  /**
   * Whether the runner reports the start before running the program (default `true`).
   * A program's own later `reportStarted` of the same operation is then not sent again
   * (see `Callback.reportStarted`). With `false` the program reports it; if it never
   * does, the runner still sends one before the outcome.
   */
  readonly reportStarted?: boolean
  /** Called with the outcome once it is settled and the layer closed (logs flushed). */
  readonly onOutcome?: (outcome: TrainerOutcome) => void
}

/** Options of `runTrainer` / `runTrainerEffect`: the run options and the layer to run over. */
export interface RunTrainerOptions extends TrainerRunOptions {
  /** The layer the program runs over (default `TrainerSdk.layer`). */
  readonly layer?: Layer.Layer<TrainerServices, ConfigError>
}

/** How a trainer run ended. */
export interface TrainerOutcome {
  /** 0 success, 1 failure reported to the backend, 2 outcome not delivered to the backend. */
  readonly exitCode: 0 | 1 | 2
  /** `completed`; `failed` (the program failed); `stopped` (interrupted, e.g. SIGTERM). */
  readonly status: "completed" | "failed" | "stopped"
  /** The platform error type of a failure. */
  readonly errorType: ErrorType | undefined
  /** The failure's one-line description. */
  readonly message: string | undefined
  /** Whether the backend accepted the job's outcome (from the program or the runner). */
  readonly delivered: boolean
}

/**
 * Runs a trainer program as an Effect over `layer` (default `TrainerSdk.layer`) and returns
 * how it ended, without exiting the process: the start is reported before the program runs
 * (unless `reportStarted: false`), on failure the error is classified and reported (with
 * message and trace), logs are flushed and ClearML is ended by the outcome. Exit code
 * 0 / 1 / 2 (2: the outcome could not be delivered).
 */
export const runTrainerEffect = <A, E>(
  program: Effect.Effect<A, E, TrainerServices>,
  options: RunTrainerOptions = {}
): Effect.Effect<TrainerOutcome> =>
  runTrainerWith(options.layer ?? TrainerSdk.layer, program, options).pipe(Effect.provide(NodeHttpClient.layerUndici))

/**
 * Runs a trainer program as the process main: `runTrainerEffect` with SIGTERM and SIGINT
 * interrupting the program (so the failure is still reported and the logs flushed), then
 * exits with the outcome's code.
 */
export const runTrainer = <A, E>(
  program: Effect.Effect<A, E, TrainerServices>,
  options: RunTrainerOptions = {}
): void => {
  let outcome: TrainerOutcome | undefined
  // `runMain` interrupts the program on the first SIGTERM/SIGINT and then removes its own
  // listeners; these record the signal (the shutdown budget counts from it, with a
  // last-resort exit just after it) and keep a repeated signal from killing the process
  // while the outcome is being reported.
  const onSignal = (signal: NodeJS.Signals) => handleShutdownSignal(signal, () => outcome?.exitCode ?? 2)
  process.on("SIGTERM", onSignal)
  process.on("SIGINT", onSignal)
  NodeRuntime.runMain(
    runTrainerEffect(program, {
      ...options,
      onOutcome: (o) => {
        outcome = o
        options.onOutcome?.(o)
      }
    }),
    {
      // The outcome is recorded before an interruption (a signal) ends the main fiber; no
      // outcome means the runner itself broke, so the result is unknown to the backend.
      teardown: () => process.exit(outcome?.exitCode ?? 2)
    }
  )
}
