/**
 * trainer-sdk: the Effect SDK every trainer container uses to talk to the platform.
 *
 * @since 0.1.0
 */
export * from "./Errors.js"
export * from "./JobContext.js"
