/**
 * Runs before every test file. The files a worker runs share its loaded packages
 * (`isolate: false` in vitest.config.ts; src/ and test/ modules are still evaluated afresh
 * per file), so nothing a file leaves in a shared package may reach the next file:
 *
 * `@effect/vitest`'s `layer(...)` assigns its own `effect` / `scoped` / `prop` / `layer`
 * testers onto vitest's shared `it` (the object `@effect/vitest` exports as `it`). After a
 * file that uses `layer(...)`, a later file's `it.effect` would run inside that layer's
 * runtime: one TestClock for all its tests, its time carried over from test to test. The
 * plain testers (a fresh TestContext per test) are put back here.
 */
import { it, makeMethods } from "@effect/vitest"

makeMethods(it)
