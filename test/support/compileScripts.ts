/**
 * The scripts the tests start as processes (the CLI, the trainer, cache and transfer
 * processes), compiled once per test run: `src/` and `test/support/` transpiled by the
 * TypeScript compiler as `npm run build` compiles them (file by file, same compiler options),
 * into a fresh temporary directory that `node` runs without a loader. Under `node --import
 * tsx` every module of every package passed through tsx's hooks: about 3 s of CPU per process
 * against about 1.3 s for the compiled copy, and the suite starts ~25 processes.
 *
 * vitest runs this as its global setup (vitest.config.ts); tests find the scripts with
 * `compiledScript` (./compiledScripts.ts).
 */
import { mkdtemp, mkdir, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises"
import { tmpdir } from "node:os"
import { dirname, join, relative } from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"
import type { TestProject } from "vitest/node"

const repoRoot = fileURLToPath(new URL("../..", import.meta.url))

/** Every `.ts` file (not `.d.ts`) under `dir`. */
const sources = async (dir: string): Promise<Array<string>> => {
  const found: Array<string> = []
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) found.push(...await sources(path))
    else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) found.push(path)
  }
  return found
}

/** Compiles `src/` and `test/support/` into `outDir`, which resolves packages from the repository's node_modules. */
const compile = async (outDir: string): Promise<void> => {
  const configFile = join(repoRoot, "tsconfig.json")
  const parsed = ts.getParsedCommandLineOfConfigFile(configFile, {}, {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (diagnostic) => {
      throw new Error(ts.flattenDiagnosticMessageText(diagnostic.messageText, "\n"))
    }
  })
  // ES modules, as tsc emits them for this "type": "module" package (a file-by-file transpile
  // cannot see package.json, and would emit CommonJS for NodeNext).
  const compilerOptions: ts.CompilerOptions = {
    ...parsed!.options,
    module: ts.ModuleKind.ES2022,
    moduleResolution: ts.ModuleResolutionKind.Bundler,
    declaration: false,
    sourceMap: false,
    noEmit: false
  }
  const files = [...await sources(join(repoRoot, "src")), ...await sources(join(repoRoot, "test", "support"))]
  await Promise.all(files.map(async (file) => {
    const { outputText } = ts.transpileModule(await readFile(file, "utf8"), { compilerOptions, fileName: file })
    const target = join(outDir, relative(repoRoot, file)).replace(/\.ts$/, ".js")
    await mkdir(dirname(target), { recursive: true })
    await writeFile(target, outputText)
  }))
  await writeFile(join(outDir, "package.json"), JSON.stringify({ type: "module" }))
  await symlink(join(repoRoot, "node_modules"), join(outDir, "node_modules"), "dir")
}

/** vitest's global setup: compiles the scripts for this run; the directory is removed after it. */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const outDir = await mkdtemp(join(tmpdir(), "trainer-sdk-scripts-"))
  await compile(outDir)
  project.provide("compiledRoot", outDir)
  return () => rm(outDir, { recursive: true, force: true })
}

