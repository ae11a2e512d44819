/**
 * A stand-in for a training library whose callbacks are synchronous (as the epoch-end hooks
 * of Ultralytics, Keras or PyTorch Lightning are): it trains, saves its weights, then calls
 * `onEpochEnd` and goes on with the next epoch without waiting for anything it returns.
 */
import { mkdirSync, writeFileSync } from "node:fs"
import { join } from "node:path"

/** What an epoch-end callback receives. */
export interface EpochEnd {
  readonly epoch: number
  readonly metrics: Readonly<Record<string, number>>
  /** `last.pt`, rewritten every epoch. */
  readonly lastWeights: string
  /** `best.pt`, rewritten when the epoch is the best so far. */
  readonly bestWeights: string | undefined
}

/** The simulated library's trainer. */
export class Trainer {
  private readonly callbacks: Array<(end: EpochEnd) => void> = []
  constructor(private readonly saveDir: string) {}

  /** Registers a synchronous callback run after each epoch. */
  onEpochEnd(callback: (end: EpochEnd) => void): void {
    this.callbacks.push(callback)
  }

  /** Trains `epochs` epochs (simulated), saving weights and calling back after each. */
  async train(options: { readonly epochs: number }): Promise<Readonly<Record<string, number>>> {
    mkdirSync(this.saveDir, { recursive: true })
    let best = -1
    let metrics: Readonly<Record<string, number>> = {}
    for (let epoch = 1; epoch <= options.epochs; epoch++) {
      await new Promise((resolve) => setTimeout(resolve, 1))
      metrics = { loss: 1 / (epoch + 1), "mAP50-95": Math.min(0.9, 0.2 * epoch) }
      const lastWeights = join(this.saveDir, "last.pt")
      writeFileSync(lastWeights, `weights of epoch ${epoch}`)
      let bestWeights: string | undefined
      if (metrics["mAP50-95"]! > best) {
        best = metrics["mAP50-95"]!
        bestWeights = join(this.saveDir, "best.pt")
        writeFileSync(bestWeights, `weights of epoch ${epoch}`)
      }
      for (const callback of this.callbacks) callback({ epoch, metrics, lastWeights, bestWeights })
    }
    return metrics
  }
}
