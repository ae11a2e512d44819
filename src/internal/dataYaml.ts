/**
 * Writing `data.yaml` for its consumers: Ultralytics (and mmyolo) load it with PyYAML, a YAML
 * 1.1 reader (see `yaml11`, which reads it the same way). Every string is double-quoted, so
 * no implicit resolver reinterprets a class name (`yes`, `1:20`, `~`), and every character
 * PyYAML would refuse or take as a line break is escaped. The document is small and has one
 * shape (keys, numbers, strings, lists of them), so it is printed here directly, the way the
 * YAML library prints it, without loading that library into the conversion thread. Pure.
 */

/** Characters that must be escaped in a double-quoted scalar for PyYAML to read them back. */
const mustEscape = /[\x7F-\x9F\u2028\u2029\uFEFF\uFFFE\uFFFF]/g

const hex = (code: number, digits: number) => code.toString(16).toUpperCase().padStart(digits, "0")

/** YAML's short escapes for the control characters JSON writes as `\u00XX`. */
const shortEscapes: Readonly<Record<string, string>> = {
  "0000": "\\0",
  "0007": "\\a",
  "000b": "\\v",
  "001b": "\\e"
}

/**
 * A string as a one-line double-quoted YAML scalar: its JSON text, with JSON's `\u00XX`
 * escapes written as YAML's (`\0`, `\a`, `\v`, `\e`, `\xXX`), a space before an escaped line
 * break escaped too (as the YAML library writes it), and the characters of `mustEscape`
 * escaped.
 */
export const quotedScalar = (value: string): string => {
  const json = JSON.stringify(value)
  let out = ""
  let start = 0
  for (let i = 0; i < json.length; i++) {
    const ch = json[i]
    if (ch === " " && json[i + 1] === "\\" && json[i + 2] === "n") {
      out += `${json.slice(start, i)}\\ `
      start = i + 1
    } else if (ch === "\\") {
      if (json[i + 1] === "u") {
        const code = json.slice(i + 2, i + 6)
        const short = shortEscapes[code]
        if (short !== undefined || code.startsWith("00")) {
          out += json.slice(start, i) + (short ?? `\\x${code.slice(2)}`)
          start = i + 6
        }
        i += 5
      } else i++
    }
  }
  out += json.slice(start)
  return out.replace(mustEscape, (c) => {
    const code = c.charCodeAt(0)
    return code <= 0xff ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`
  })
}

/** A value of `data.yaml`. */
type DataYamlValue = string | number | ReadonlyArray<string | number>

const scalar = (value: string | number): string => (typeof value === "number" ? String(value) : quotedScalar(value))

/** A mapping of keys to scalars and lists as block YAML, every string double-quoted. */
const blockMapping = (entries: ReadonlyArray<readonly [string, DataYamlValue]>): string =>
  entries.map(([key, value]) => {
    const head = `${quotedScalar(key)}:`
    if (!Array.isArray(value)) return `${head} ${scalar(value as string | number)}\n`
    if (value.length === 0) return `${head} []\n`
    return `${head}\n${value.map((item) => `  - ${scalar(item)}\n`).join("")}`
  }).join("")

/** What goes in `data.yaml`. */
export interface YoloDataYaml {
  readonly names: ReadonlyArray<string>
  /** Whether there is a test split. */
  readonly hasTest: boolean
  /** `[K, 3]` for pose. */
  readonly kptShape?: readonly [number, number] | undefined
  /** Pose: Ultralytics' horizontal-flip keypoint pairing, when derivable. */
  readonly flipIdx?: ReadonlyArray<number> | undefined
  /** Classification: split entries are folders (`train`, `val`) rather than list files. */
  readonly folders?: boolean | undefined
}

/**
 * The `data.yaml` text. No `path` key: Ultralytics then takes the directory of data.yaml as
 * the dataset root, so a moved dataset still loads (a relative `path` would be resolved
 * against Ultralytics' own datasets directory). PyYAML reads every class name back exactly.
 */
export const yoloDataYaml = (d: YoloDataYaml): string => {
  const ext = d.folders ? "" : ".txt"
  const entries: Array<readonly [string, DataYamlValue]> = [["train", `train${ext}`], ["val", `val${ext}`]]
  if (d.hasTest) entries.push(["test", `test${ext}`])
  entries.push(["nc", d.names.length], ["names", d.names])
  if (d.kptShape) entries.push(["kpt_shape", d.kptShape])
  if (d.flipIdx) entries.push(["flip_idx", d.flipIdx])
  return blockMapping(entries)
}
