import { fileURLToPath } from "node:url"
import { defineConfig } from "vitest/config"

export default defineConfig({
  resolve: {
    // The README's examples import the package by its name, as a trainer project does.
    alias: { "trainer-sdk": fileURLToPath(new URL("./src/index.ts", import.meta.url)) }
  },
  test: {
    include: ["test/**/*.test.ts", "examples/**/*.test.ts"],
    pool: "forks",
    // Many files mostly wait (child processes, local servers, timeouts of the transport
    // tests): on 2 cores, three files at a time keep both busy (vitest's default is one less
    // than the core count, a single worker here).
    maxWorkers: 3,
    // As many as the most, so no worker is retired mid-run: with workers shared between files
    // (isolate: false), tinypool 1.1 retiring a worker that fell idle while others still ran
    // raised an unhandled "Terminating worker thread" rejection (3 runs of 3), and vitest
    // stopped without running the remaining files or printing its summary.
    minWorkers: 3,
    poolOptions: {
      forks: {
        // A worker keeps the packages it loaded (effect, @effect/platform, the AWS SDK, ...)
        // for the next file it runs; src/ and test/ modules are still evaluated afresh per
        // file. Loading the packages again for each of ~40 files cost more CPU than most of
        // the tests. test/support/vitestSetup.ts undoes what a file can leave in a package.
        isolate: false,
        // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only offers
        // through the legacy provider (see the storage spec's notes on the local S3 server).
        execArgv: ["--openssl-legacy-provider"]
      }
    },
    setupFiles: ["test/support/vitestSetup.ts"],
    // Compiles the scripts the tests start as processes, once per run (see the file).
    globalSetup: ["test/support/compileScripts.ts"],
    env: {
      // The AWS SDK warns on every client that releases after January 2027 need Node 22;
      // the warning is for operators, not test output.
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true"
    },
    // Generous: the suite must pass with another suite running beside it on the same 2 cores
    // (the heaviest tests, 1,100 objects through a local S3 server, take ~10 s when quiet).
    testTimeout: 120_000,
    hookTimeout: 120_000
  }
})
