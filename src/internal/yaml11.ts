/**
 * `data.yaml` as its consumers read it. Ultralytics (and mmyolo) load it with PyYAML, a YAML
 * 1.1 reader: it strips characters PyYAML cannot read, and its implicit resolvers turn plain
 * `yes`, `1:20`, `1_000`, `0b101`, `2020-01-01` or `~` into booleans, numbers, dates and
 * nulls, and refuse plain `=` and `<<` outside a mapping key. This module reads YAML the way
 * PyYAML would (`dataYaml` writes it). Pure.
 */
import * as YAML from "yaml"
import { thrownMessage } from "../Errors.js"

/** Characters PyYAML's reader refuses (and Ultralytics strips before parsing). */
const unprintable = /[^\x09\x0A\x0D\x20-\x7E\x85\xA0-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu

const hex = (code: number, digits: number) => code.toString(16).toUpperCase().padStart(digits, "0")

/** The tags of PyYAML's implicit resolvers (`yaml/resolver.py`), each with its first characters. */
const resolvers: ReadonlyArray<readonly [PlainTag, RegExp, string | undefined]> = [
  ["bool", /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/, "yYnNtTfFoO"],
  [
    "float",
    /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
    "-+0123456789."
  ],
  ["int", /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/, "-+0123456789"],
  ["merge", /^(?:<<)$/, "<"],
  ["null", /^(?:~|null|Null|NULL|)$/, undefined],
  [
    "timestamp",
    /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/,
    "0123456789"
  ],
  ["value", /^(?:=)$/, "="]
]

/** What PyYAML makes of a plain (unquoted) scalar. */
export type PlainTag = "str" | "bool" | "int" | "float" | "null" | "timestamp" | "merge" | "value"

/** The tag PyYAML's resolver gives a plain scalar (dispatching on its first character, as PyYAML does). */
export const pyyamlPlainTag = (plain: string): PlainTag => {
  const first = plain[0]
  for (const [tag, re, firsts] of resolvers) {
    const applies = tag === "null" ? first === undefined || "~nN".includes(first) : first !== undefined && firsts!.includes(first)
    if (applies && re.test(plain)) return tag
  }
  return "str"
}

const sexagesimal = (text: string): number =>
  text.split(":").reduce((acc, part) => acc * 60 + Number(part), 0)

const pyInt = (raw: string): string => {
  let text = raw.replace(/_/g, "")
  const sign = text[0] === "-" ? -1n : 1n
  if (text[0] === "-" || text[0] === "+") text = text.slice(1)
  const value = text === "0"
    ? 0n
    : text.startsWith("0b")
    ? BigInt(`0b${text.slice(2)}`)
    : text.startsWith("0x")
    ? BigInt(`0x${text.slice(2)}`)
    : text.startsWith("0")
    ? BigInt(`0o${text.slice(1)}`)
    : text.includes(":")
    ? BigInt(sexagesimal(text))
    : BigInt(text)
  return String(sign * value)
}

const pyFloat = (raw: string): string => {
  let text = raw.replace(/_/g, "").toLowerCase()
  const sign = text[0] === "-" ? -1 : 1
  if (text[0] === "-" || text[0] === "+") text = text.slice(1)
  if (text === ".inf") return sign < 0 ? "-inf" : "inf"
  if (text === ".nan") return "nan"
  const value = sign * (text.includes(":") ? sexagesimal(text) : Number(text))
  return Number.isInteger(value) && Math.abs(value) < 1e16 ? `${value}.0` : String(value)
}

/**
 * Python's `str()` of what PyYAML loads from a plain scalar (`True`, `80`, `None`,
 * `2020-01-01`...), or `undefined` when PyYAML cannot load it at all (`=`, `<<`).
 */
export const pyyamlPlainString = (plain: string): string | undefined => {
  switch (pyyamlPlainTag(plain)) {
    case "str":
      return plain
    case "bool":
      return /^(?:yes|true|on)$/i.test(plain) ? "True" : "False"
    case "null":
      return "None"
    case "int":
      return pyInt(plain)
    case "float":
      return pyFloat(plain)
    case "timestamp":
      return plain.length === 10 ? plain : plain.replace(/[Tt]|[ \t]+/, " ")
    case "merge":
    case "value":
      return undefined
  }
}

/** `data.yaml` as PyYAML (and so Ultralytics) reads it. */
export interface Yaml11Reading {
  /** The document's values (class names excepted) as YAML 1.1 reads them; `{}` when unloadable. */
  readonly doc: Readonly<Record<string, unknown>>
  /** Class names as Ultralytics ends up with them (`str()` of what PyYAML loaded), in index order. */
  readonly names: ReadonlyArray<string> | undefined
  /** Problems: unloadable text, stripped characters, names that do not read back as written. */
  readonly issues: ReadonlyArray<string>
}

const describe = (text: string) => JSON.stringify(text)

/**
 * Reads `data.yaml` as Ultralytics does: characters PyYAML cannot read are stripped (an
 * issue), the text is parsed as YAML 1.1, and each class name is resolved with PyYAML's
 * rules: a plain `yes` is the class `True`, a plain `1:20` the class `80` (issues naming the
 * class), a plain `=` or `<<` makes the file unloadable.
 */
export const readYaml11 = (text: string): Yaml11Reading => {
  const issues: Array<string> = []
  const stripped = text.replace(unprintable, (c) => {
    issues.push(`data.yaml: character U+${hex(c.codePointAt(0)!, 4)} is not printable; Ultralytics strips it before reading`)
    return ""
  })
  const document = YAML.parseDocument(stripped, { version: "1.1", uniqueKeys: false })
  if (document.errors.length > 0) {
    return { doc: {}, names: undefined, issues: [...issues, `data.yaml: not loadable YAML: ${document.errors[0]!.message}`] }
  }
  let value: unknown
  try {
    value = document.toJS({ maxAliasCount: 100 })
  } catch (error) {
    // An alias bomb or a merge of a non-mapping: PyYAML would not load it either.
    return { doc: {}, names: undefined, issues: [...issues, `data.yaml: not loadable YAML: ${thrownMessage(error)}`] }
  }
  const doc = typeof value === "object" && value !== null && !Array.isArray(value) ? value as Record<string, unknown> : {}
  const namesNode = document.get("names", true)
  let entries: Array<readonly [string, unknown]> | undefined
  if (YAML.isSeq(namesNode)) entries = namesNode.items.map((item, i) => [String(i), item] as const)
  else if (YAML.isMap(namesNode)) {
    // `{0: cat, 1: dog}`: Ultralytics indexes the classes by key, which must be 0..n-1.
    entries = namesNode.items.map((pair) => [String(YAML.isScalar(pair.key) ? pair.key.value : pair.key), pair.value] as const)
      .sort((a, b) => Number(a[0]) - Number(b[0]))
    if (entries.some(([key], i) => key !== String(i))) issues.push("data.yaml: names keys are not the class indices 0..n-1")
  }
  if (entries === undefined) return { doc, names: undefined, issues }
  const names: Array<string> = []
  let loadable = true
  for (const [index, node] of entries) {
    if (!YAML.isScalar(node)) {
      issues.push(`data.yaml: class ${index} is not a string`)
      names.push(String(YAML.isNode(node) ? JSON.stringify(node.toJSON()) : node))
      continue
    }
    if (node.type !== "PLAIN") {
      names.push(String(node.value))
      continue
    }
    const source = typeof node.source === "string" ? node.source : String(node.value)
    const read = pyyamlPlainString(source)
    if (read === undefined) {
      loadable = false
      issues.push(`data.yaml: class ${index} ${describe(source)} makes the file unloadable by PyYAML (Ultralytics): quote it`)
      names.push(source)
    } else {
      if (read !== source) {
        issues.push(`data.yaml: class ${index} ${describe(source)} reads as ${read} under YAML 1.1 (PyYAML, Ultralytics): quote it`)
      }
      names.push(read)
    }
  }
  return { doc: loadable ? doc : {}, names, issues }
}
