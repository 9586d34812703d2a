// Training: the Trainer class, its options and events, the data pipeline pieces and the launcher.
export { Trainer, type StepEvent, type EpochEvent, type CheckpointEvent, type SkipEvent, type DoneEvent, type TrainerEvent } from './trainer';
export type { TrainerOptions, DistributedOptions } from './options';
export { loadAnnotations, parseAnnotations, type Annotation } from './annotations';
export { launchWorkers, type LaunchOptions, type LaunchResult } from './launcher';
export { listCheckpoints, resolveCheckpoint, readState, type TrainerState } from './checkpoint';
