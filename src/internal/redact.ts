/**
 * Masking of secrets in whatever the SDK prints or sends: the `user:password@` part of any
 * URL (whatever characters the password holds, whether or not the URL is otherwise valid)
 * and the values of the storage and ClearML secrets.
 */

/**
 * `scheme://` followed by a user-info part up to the last `@` before the end of the token
 * (whitespace, a quote or an angle bracket end it). Greedy on purpose: a password may hold
 * `/`, `:`, `?`, `#`, `%` or `@`, and masking a bit too much is better than leaking a secret.
 */
const urlCredentials = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s"'`<>]*@/gi

/** Text with every URL's `user:password@` part replaced by `***@`. */
export const maskUrlCredentials = (text: string): string =>
  text.includes("://") ? text.replace(urlCredentials, "$1***@") : text

/**
 * One URL value (a variable's raw text) as it may be shown: everything between `://` and
 * the last `@` masked, whatever it holds (whitespace and quotes included).
 */
export const maskUrlValue = (raw: string): string => {
  const scheme = raw.indexOf("://")
  const at = raw.lastIndexOf("@")
  if (scheme >= 0 && at > scheme) return `${raw.slice(0, scheme + 3)}***${raw.slice(at)}`
  return scheme < 0 && at >= 0 ? `***${raw.slice(at)}` : raw
}

/** Secret values shorter than this are not masked (they would mask ordinary words). */
const minimumSecretLength = 4

/**
 * A masking function for the given secret values: URL credentials are masked, then every
 * occurrence of a secret value is replaced by `***`.
 */
export const makeRedactor = (secrets: ReadonlyArray<string>): (text: string) => string => {
  const values = [...new Set(secrets.filter((s) => s.length >= minimumSecretLength))].sort((a, b) => b.length - a.length)
  return (text) => {
    let out = maskUrlCredentials(text)
    for (const secret of values) if (out.includes(secret)) out = out.split(secret).join("***")
    return out
  }
}

/**
 * A copy of a JSON value with every string (keys included) passed through `redact`;
 * values without anything to mask are returned as they are (no copy).
 */
export const redactJson = (value: unknown, redact: (text: string) => string): unknown => {
  if (typeof value === "string") return redact(value)
  if (Array.isArray(value)) {
    let changed = false
    const out = value.map((item) => {
      const next = redactJson(item, redact)
      if (next !== item) changed = true
      return next
    })
    return changed ? out : value
  }
  if (typeof value === "object" && value !== null) {
    let changed = false
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) {
      const nextKey = redact(key)
      const next = redactJson(item, redact)
      if (next !== item || nextKey !== key) changed = true
      out[nextKey] = next
    }
    return changed ? out : value
  }
  return value
}
