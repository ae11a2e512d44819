import { TrainerClient } from "trainer-sdk"
import { train } from "./promiseTrainer.js"

// Reports the start, runs `train`, settles the outcome as runTrainer does (a thrown error is
// reported failed, SIGTERM reported stopped), closes the SDK and exits 0 / 1 / 2.
await TrainerClient.run(train)
