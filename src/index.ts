/**
 * trainer-sdk: the Effect SDK every trainer container uses to talk to the platform.
 *
 * @since 0.1.0
 */
export * from "./Callback.js"
export * from "./ClearML.js"
export * from "./Converter.js"
export * from "./DatasetCache.js"
export * from "./DevBackend.js"
export * from "./Errors.js"
export * from "./JobContext.js"
export * from "./LogBuffer.js"
export * from "./ObjectStore.js"
export * from "./Outbox.js"
export * from "./Storage.js"
export * from "./TrainerSdk.js"
