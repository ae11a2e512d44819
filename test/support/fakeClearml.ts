/**
 * A fake ClearML API server on 127.0.0.1 that enforces the REST subset of the spec:
 * Basic login issuing JWTs, Bearer on every other call (401/30 otherwise), the worker
 * header, JSON bodies with `application/json`, and `events.add_batch` bodies parsed
 * strictly (exact `application/json-lines`, no trailing newline, one well-formed event per
 * line, a size cap). Anything off-spec is recorded in `violations` and answered with 400.
 */
import { HttpServer, HttpServerRequest, HttpServerResponse } from "@effect/platform"
import { NodeHttpServer } from "@effect/platform-node"
import { Context, Effect, Layer } from "effect"
import * as http from "node:http"

/** How the fake behaves. */
export interface FakeClearmlOptions {
  readonly accessKey?: string
  readonly secretKey?: string
  /** Largest accepted `events.add_batch` body in bytes. Default 15 MiB. */
  readonly maxBatchBytes?: number
  /** Revoke the first token after this many authorized calls (once), so the client must log in again. */
  readonly revokeFirstTokenAfter?: number
  /** Lifetime of issued tokens (`exp` claim); an expired token is answered 401. Default 30 days. */
  readonly tokenLifetimeSeconds?: number
  /** The fake's clock in epoch ms, for `exp` and expiry (default `Date.now`; a test's `TestClock` to share it). */
  readonly now?: () => number
  /** Someone else creates the project between the client's lookup and its create (400/801). */
  readonly projectCreateRace?: boolean
}

/** A task as the fake holds it. */
export interface FakeTask {
  readonly name: string
  readonly project: string
  readonly type: string
  status: "created" | "in_progress" | "completed" | "failed" | "stopped"
  statusReason?: string
  statusMessage?: string
  hyperparams: Array<{ section: string; name: string; value: string }>
}

/** Everything the fake saw. */
export interface FakeClearmlState {
  readonly url: string
  logins: number
  /** Calls answered 401 for a missing, unknown or revoked token. */
  unauthorized: number
  pings: number
  readonly calls: Array<string>
  readonly projects: Map<string, string>
  readonly tasks: Map<string, FakeTask>
  readonly events: Array<Record<string, unknown>>
  /** Byte size and line count of every accepted batch. */
  readonly batches: Array<{ readonly bytes: number; readonly lines: number }>
  readonly workers: Set<string>
  readonly violations: Array<string>
}

const envelope = (status: number, data: unknown, subcode = 0, msg = "OK") =>
  HttpServerResponse.unsafeJson(
    { meta: { result_code: status, result_subcode: subcode, result_msg: msg, id: "req" }, data },
    { status }
  )

const base64Url = (text: string) => Buffer.from(text).toString("base64url")

const isObject = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

const textLevels = new Set(["debug", "info", "warning", "error", "critical"])

/** Checks one event line's shape; returns what is wrong, or undefined. */
const checkEvent = (event: Record<string, unknown>, tasks: Map<string, FakeTask>): string | undefined => {
  if (typeof event["task"] !== "string" || !tasks.has(event["task"])) return `unknown task ${String(event["task"])}`
  if (typeof event["timestamp"] !== "number" || !Number.isInteger(event["timestamp"])) return "timestamp must be epoch ms"
  switch (event["type"]) {
    case "training_stats_scalar": {
      const keys = Object.keys(event).sort().join(",")
      if (keys !== "iter,metric,task,timestamp,type,value,variant") return `unexpected scalar fields ${keys}`
      if (typeof event["iter"] !== "number" || !Number.isInteger(event["iter"])) return "iter must be an integer"
      if (typeof event["metric"] !== "string" || typeof event["variant"] !== "string") return "metric/variant must be strings"
      if (typeof event["value"] !== "number" || !Number.isFinite(event["value"])) return "value must be a finite number"
      return undefined
    }
    case "log":
      if (typeof event["msg"] !== "string") return "msg must be a string"
      if (typeof event["level"] !== "string" || !textLevels.has(event["level"])) return `bad level ${String(event["level"])}`
      if (typeof event["worker"] !== "string") return "worker must be a string"
      return undefined
    default:
      return `unknown event type ${String(event["type"])}`
  }
}

/** Issued tokens with their expiry (epoch ms), the first one, and the calls authorized with it. */
interface Tokens {
  readonly valid: Map<string, number>
  first?: string
  authorizedWithFirst: number
}

const handle = (state: FakeClearmlState, options: FakeClearmlOptions, tokens: Tokens) =>
  Effect.gen(function*() {
    const now = options.now ?? Date.now
    const request = yield* HttpServerRequest.HttpServerRequest
    const endpoint = new URL(request.url, "http://fake").pathname.slice(1)
    const body = yield* Effect.orDie(request.text)
    const headers = request.headers
    state.calls.push(endpoint)
    const violation = (detail: string) => {
      state.violations.push(`${endpoint}: ${detail}`)
      return envelope(400, {}, 0, detail)
    }
    if (request.method !== "POST") return violation(`method ${request.method}`)
    const worker = headers["x-clearml-worker"]
    if (typeof worker !== "string" || worker === "") return violation("missing X-ClearML-Worker")
    state.workers.add(worker)
    const authorization = headers["authorization"] ?? ""

    if (endpoint === "auth.login") {
      const expected = `Basic ${Buffer.from(`${options.accessKey ?? "key"}:${options.secretKey ?? "secret"}`).toString("base64")}`
      if (authorization !== expected) return envelope(401, {}, 0, "invalid credentials")
      if (body !== "" && body !== "{}") return violation("login body must be empty")
      state.logins++
      const exp = Math.floor(now() / 1000) + (options.tokenLifetimeSeconds ?? 30 * 24 * 3600)
      const token = `${base64Url("{\"alg\":\"HS256\"}")}.${base64Url(JSON.stringify({ exp, n: state.logins }))}.sig`
      tokens.valid.set(token, exp * 1000)
      if (tokens.first === undefined) tokens.first = token
      return envelope(200, { token })
    }

    const token = authorization.startsWith("Bearer ") ? authorization.slice(7) : undefined
    const expiresAt = token === undefined ? undefined : tokens.valid.get(token)
    if (token === undefined || expiresAt === undefined) {
      state.unauthorized++
      return envelope(401, {}, 30, "Invalid token")
    }
    if (now() >= expiresAt) {
      state.unauthorized++
      return envelope(401, {}, 30, "Token expired")
    }
    if (token === tokens.first && options.revokeFirstTokenAfter !== undefined) {
      tokens.authorizedWithFirst++
      if (tokens.authorizedWithFirst > options.revokeFirstTokenAfter) {
        tokens.valid.delete(token)
        state.unauthorized++
        return envelope(401, {}, 30, "Token expired")
      }
    }

    const contentType = headers["content-type"]
    if (endpoint === "events.add_batch") {
      if (contentType !== "application/json-lines") return violation(`content-type ${String(contentType)}`)
      if (body === "") return envelope(400, {}, 17, "empty batch")
      const bytes = Buffer.byteLength(body)
      if (bytes > (options.maxBatchBytes ?? 15 * 1024 * 1024)) return violation(`batch of ${bytes} bytes over the cap`)
      if (body.endsWith("\n")) return violation("trailing newline")
      const lines = body.split("\n")
      const parsed: Array<Record<string, unknown>> = []
      for (const [i, line] of lines.entries()) {
        let event: unknown
        try {
          event = JSON.parse(line)
        } catch {
          return violation(`line ${i} is not JSON`)
        }
        if (!isObject(event)) return violation(`line ${i} is not an object`)
        const wrong = checkEvent(event, state.tasks)
        if (wrong !== undefined) return violation(`line ${i}: ${wrong}`)
        parsed.push(event)
      }
      state.events.push(...parsed)
      state.batches.push({ bytes, lines: lines.length })
      return envelope(200, { added: parsed.length, errors: 0, errors_info: {} })
    }

    if (contentType !== "application/json") return violation(`content-type ${String(contentType)}`)
    let json: unknown
    try {
      json = JSON.parse(body)
    } catch {
      return violation("body is not JSON")
    }
    if (!isObject(json)) return violation("body is not a JSON object")

    switch (endpoint) {
      case "projects.get_all": {
        if (typeof json["name"] !== "string") return violation("name missing")
        const pattern = new RegExp(json["name"])
        const projects = [...state.projects].filter(([name]) => pattern.test(name)).map(([, id]) => ({ id }))
        return envelope(200, { projects })
      }
      case "projects.create": {
        const name = json["name"]
        if (typeof name !== "string" || name === "") return violation("name missing")
        if (options.projectCreateRace === true && !state.projects.has(name)) {
          state.projects.set(name, `project-by-someone-else`)
          return envelope(400, {}, 801, "Project name already exists")
        }
        if (state.projects.has(name)) return envelope(400, {}, 801, "Project name already exists")
        const id = `project-${state.projects.size + 1}`
        state.projects.set(name, id)
        return envelope(200, { id })
      }
      case "tasks.create": {
        const { name, project, type } = json
        if (typeof name !== "string" || typeof project !== "string" || typeof type !== "string") return violation("name/project/type")
        if (![...state.projects.values()].includes(project)) return violation(`unknown project ${project}`)
        if (!["training", "inference", "data_processing", "custom"].includes(type)) return violation(`task type ${type}`)
        const id = `task-${state.tasks.size + 1}`
        state.tasks.set(id, { name, project, type, status: "created", hyperparams: [] })
        return envelope(200, { id })
      }
      case "tasks.get_by_id": {
        const task = typeof json["task"] === "string" ? state.tasks.get(json["task"]) : undefined
        if (task === undefined) return envelope(400, {}, 101, "Invalid task id")
        return envelope(200, { task: { id: json["task"], project: task.project, name: task.name, status: task.status } })
      }
      case "tasks.started":
      case "tasks.ping":
      case "tasks.completed":
      case "tasks.failed":
      case "tasks.stopped":
      case "tasks.edit_hyper_params": {
        const task = typeof json["task"] === "string" ? state.tasks.get(json["task"]) : undefined
        if (task === undefined) return violation(`unknown task ${String(json["task"])}`)
        if (endpoint === "tasks.started") task.status = "in_progress"
        else if (endpoint === "tasks.ping") state.pings++
        else if (endpoint === "tasks.edit_hyper_params") {
          const params = json["hyperparams"]
          if (!Array.isArray(params) || !params.every((p) => isObject(p) && typeof p["value"] === "string")) {
            return violation("hyperparams values must be strings")
          }
          task.hyperparams.push(...params as Array<{ section: string; name: string; value: string }>)
        } else {
          if (json["force"] !== true || typeof json["status_reason"] !== "string") return violation("force/status_reason")
          task.status = endpoint.slice("tasks.".length) as FakeTask["status"]
          task.statusReason = json["status_reason"]
          task.statusMessage = typeof json["status_message"] === "string" ? json["status_message"] : undefined
        }
        return envelope(200, {})
      }
      default:
        return violation("unknown endpoint")
    }
  })

/** Starts the fake on 127.0.0.1 (random port) for the current scope and returns its live state. */
export const startFakeClearml = (options: FakeClearmlOptions = {}) =>
  Effect.gen(function*() {
    const tokens: Tokens = { valid: new Map(), authorizedWithFirst: 0 }
    const serverLayer = NodeHttpServer.layer(() => http.createServer(), { port: 0, host: "127.0.0.1" })
    const server = Context.get(yield* Layer.build(serverLayer), HttpServer.HttpServer)
    const address = server.address
    if (address._tag !== "TcpAddress") return yield* Effect.die("expected a TCP address")
    const state: FakeClearmlState = {
      url: `http://127.0.0.1:${address.port}`,
      logins: 0,
      unauthorized: 0,
      pings: 0,
      calls: [],
      projects: new Map(),
      tasks: new Map(),
      events: [],
      batches: [],
      workers: new Set(),
      violations: []
    }
    yield* server.serve(handle(state, options, tokens))
    return state
  })
