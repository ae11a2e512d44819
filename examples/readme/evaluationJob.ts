import { Effect } from "effect"
import { TrainerSdk } from "trainer-sdk"

/** An evaluation (test run) job's program; its main is `runTrainer(evaluation)`. */
export const evaluation = Effect.gen(function*() {
  const sdk = yield* TrainerSdk
  if (sdk.context.job.kind !== "evaluation") return yield* Effect.dieMessage("not an evaluation job")
  // download sdk.context.job.datasetS3Uri and the checkpoint, run your evaluation, then:
  yield* sdk.reportEvaluationResults({
    metrics: { "mAP50-95": 0.41, mAP50: 0.62 },
    perClassMetrics: { cat: { AP50: 0.7 } },
    classNames: ["cat"],
    numImages: 120,
    predictionsJsonUri: "s3://training-checkpoints/test-runs/6/predictions.json",
    config: { conf_threshold: 0.25, split: "test" }
  }) // POST /test_inference/test/{TEST_RUN_ID}/results, task_type defaults to TASK_TYPE
})
