/**
 * trainer-sdk: the Effect SDK every trainer container uses to talk to the platform.
 *
 * The public surface, chosen name by name: what a trainer author writes (the runner, the
 * trainer service and its layers, the Promise client, the report inputs), the capability
 * services with their test twins and option types, the errors, and the dev backend.
 * Builders and internals of the modules (`make…`, raw environment readers, S3 client
 * plumbing, wire decoders) are not part of it.
 *
 * @since 0.1.0
 */

// Running a trainer: the process main and its Effect form, the Promise client.
export { runTrainer, runTrainerEffect, type RunTrainerOptions, type TrainerOutcome, type TrainerRunOptions } from "./Runner.js"
export { TrainerClient, type TrainerClientCreateOptions, type TrainerClientRunOptions } from "./TrainerClient.js"

// The trainer service and its layers.
export {
  type CheckpointUpload,
  type CheckpointUploadFailure,
  type CheckpointUploadHandle,
  type CheckpointUploadStatus,
  type CheckpointUploadsSummary,
  type EnqueueCheckpointOptions,
  type MakeTrainerSdkOptions,
  type ResumePoint,
  type TrainerCapabilities,
  type TrainerDatasetOptions,
  type TrainerHooks,
  TrainerSdk,
  type TrainerSdkLayerOptions,
  type TrainerSdkService,
  type TrainerSdkTestOptions,
  type TrainerServices,
  type TrainerTestServices
} from "./TrainerSdk.js"

// The job context (the environment, typed).
export {
  type BasicConfig,
  type ClearMLSettings,
  type EvaluationJobVariables,
  type ExportJobVariables,
  type InferenceJobVariables,
  JobContext,
  type JobContextInput,
  type JobContextShape,
  jobIdOf,
  type JobIdentity,
  type JobKind,
  type JobVariables,
  normalizeTaskType,
  type PrimaryMetricMode,
  type ProcessRank,
  type S3Uri,
  type SettingsError,
  type StorageEndpoint,
  type TaskType,
  type TrainingJobVariables
} from "./JobContext.js"

// Lifecycle callbacks and the report inputs.
export {
  Callback,
  type CallbackAttempt,
  type CallbackCompletionReport,
  type CallbackEvaluationReport,
  type CallbackExportCompletedReport,
  type CallbackFailure,
  type CallbackFailureReport,
  type CallbackInferenceCompletedReport,
  type CallbackInferenceResult,
  type CallbackLifecycle,
  type CallbackMetrics,
  type CallbackOperation,
  type CallbackProgressReport,
  type CallbackRecorder,
  type CallbackRequest,
  type CallbackService,
  type CallbackSettings,
  type CallbackStartedReport,
  CallbackTest,
  type CallbackValidationImageResult,
  type CallbackValidationReport,
  exportMetadata,
  type ExportMetadataInput
} from "./Callback.js"

// Storage, its object-store port and the dataset cache.
export {
  type AnnotationDownloadReport,
  type CheckpointRecord,
  type DatasetDownloadSummary,
  type DatasetSeed,
  type DownloadOptions,
  type DownloadProgress,
  type DownloadReport,
  StorageTest,
  type StorageTestOptions,
  parseS3Uri,
  type S3Location,
  Storage,
  type StorageConfig,
  type StorageService,
  type StorageSettings,
  type UploadCheckpointOptions,
  type UploadFileOptions
} from "./Storage.js"
export {
  defaultS3Timeouts,
  type GetObjectOptions,
  type ListObjectsOptions,
  makeS3ObjectStore,
  type MemoryObjectStore,
  type ObjectInfo,
  type ObjectStore,
  type PutObjectOptions,
  type S3ClientForBucket,
  s3ClientConfig,
  type S3EndpointSettings,
  type S3ObjectStoreOptions,
  type S3Timeouts
} from "./ObjectStore.js"
export {
  DatasetCache,
  type DatasetCacheEntry,
  type DatasetCacheOptions,
  type DatasetCacheService,
  type DatasetCacheSettings,
  type EnsureDatasetOptions
} from "./DatasetCache.js"

// Dataset conversion and validation.
export {
  type ConversionReport,
  type ConvertOptions,
  Converter,
  type ConverterRun,
  type ConverterService,
  type ConverterTask,
  ConverterTest,
  type DatasetSplit,
  type DatasetValidation,
  type OffThreadOptions,
  type PlatformSplitConfig,
  type SplitOptions,
  type SplitRatios,
  type TrainerInput,
  type ValidateOptions,
  type ValidateYoloOptions,
  type YoloValidation
} from "./Converter.js"

// Logs, the report outbox and ClearML.
export {
  LogBuffer,
  type LogBufferEntry,
  type LogBufferEntryOptions,
  type LogBufferLevel,
  type LogBufferService,
  type LogBufferSettings,
  type LogBufferStats,
  LogBufferTest,
  type LogEventType
} from "./LogBuffer.js"
export {
  type DeliverySettings,
  type OutboxDropClass,
  type OutboxOffer,
  type ReportKind,
  ReportOutbox,
  type ReportOutboxOptions,
  type ReportOutboxService,
  type ReportOutboxSettings,
  type ReportOutboxStats
} from "./Outbox.js"
export {
  ClearML,
  type ClearMLLifecycleStep,
  clearmlMetricName,
  type ClearMLMetricName,
  type ClearMLOptions,
  type ClearMLScalar,
  type ClearMLService,
  type ClearMLServiceSettings,
  type ClearMLStats,
  ClearMLTest,
  type ClearMLTextLevel
} from "./ClearML.js"

// Errors.
export {
  CacheError,
  CallbackError,
  CheckpointError,
  classifyError,
  ConfigError,
  DatasetError,
  DevBackendError,
  DownloadError,
  type ErrorType,
  type FailedObject,
  failureMessage,
  type SdkError,
  StorageError,
  type StorageFailureReason,
  TrainerError
} from "./Errors.js"

// The local dev backend and its dashboard.
export {
  type DashboardCheckpoint,
  type DashboardEpochPoint,
  type DashboardJob,
  type DashboardLog,
  type DashboardRejection,
  type DashboardState,
  type DashboardValidation,
  type DashboardValidationPoint,
  DevBackend,
  type DevBackendEvent,
  type DevBackendEventKind,
  type DevBackendFieldIssue,
  type DevBackendHandle,
  type DevBackendJobSummary,
  type DevBackendOperation,
  type DevBackendOptions,
  type DevBackendPayload,
  type DevBackendRejection,
  type DevBackendSummary,
  formatDevBackendEvent,
  formatDevBackendRejection,
  formatDevBackendSummary
} from "./DevBackend.js"
