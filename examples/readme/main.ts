import { runTrainer } from "trainer-sdk"
import { trainer } from "./trainer.js"

// The process main: reports the start, runs the program, settles the outcome, exits 0 / 1 / 2.
runTrainer(trainer)
