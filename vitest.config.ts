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
    minWorkers: 1,
    poolOptions: {
      forks: {
        // s3rver's ListObjectsV2 continuation tokens use DES, which OpenSSL 3 only offers
        // through the legacy provider (see the storage spec's notes on the local S3 server).
        execArgv: ["--openssl-legacy-provider"]
      }
    },
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
