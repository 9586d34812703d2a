// Public API of dove-encoder. Each area adds its exports here.
export { DoveError, isDoveError, type DoveErrorCode } from './base/errors';
// Native core: tensors over JS memory, TorchScript modules run off the JS thread, runtime settings.
export { Tensor, DTYPES, type DType, type NativeTypedArray, type TypedArrayOf, type ToOptions } from './core/tensor';
export { ScriptModule, loadModule, type Module, type Value, type LoadModuleOptions } from './core/module';
export { devices, hasDevice, setNumThreads, getNumThreads, manualSeed, versions, buildInfo, cpuBlockCache, type Versions, type CpuBlockCacheStats } from './core/runtime';
// Tokenizer / Reconstructor API (images, model file, BPE, safetensors).
export { Tokenizer, TokenBatch, type ImageTokens, type TokenizeOptions, type LengthMode } from './model/tokenizer';
export { Reconstructor, RgbImage, type SweepResult, type SweepOptions } from './model/reconstructor';
export { DoveModel, defaultModelPath, type DoveMeta, type LoadOptions } from './model/model-file';
export { CompiledDove, compiledPackagePath, type CompiledChoice, type CompiledOutcome, type CompiledMethod } from './model/compiled';
export { loadImage, loadBatch, loadBatchSettled, psnr, type ImageInput, type RawPixels, type ResizeFit, type ImageOptions } from './io/images';
export { BpeTokenizer } from './model/bpe';
export { readSafetensors, writeSafetensors, parseSafetensors, serializeSafetensors, type SafetensorsFile, type SafetensorsTensor } from './io/safetensors';
// Evaluation: FID, PSNR/SSIM, linear probing, token-length statistics (docs/EVALUATION.md).
export { FidFeatureExtractor, fidStatistics, frechetDistance, fidFromFeatures, folderFid, perLengthFid, disposeStatistics, FID_SETUP_HELP, type FidStatistics, type LengthFid } from './eval/fid';
export { ssim, folderQuality, perLengthQuality, type PairQuality, type QualitySummary, type LengthQuality } from './eval/quality';
export { readDataset, describeDataset, type LabelledDataset, type DatasetSplit, type DatasetFormat, type DatasetOptions } from './eval/cifar';
export { probeFeatures, trainProbe, probeCsv, type ProbeFeatures, type ProbeFeatureOptions, type ProbeTrainOptions } from './eval/probe';
export { lengthStats, folderLengths, readLengthsCsv, type LengthStats } from './eval/stats';
export { lineChartPng, histogramPng, type Series, type LineChartOptions, type HistogramOptions } from './render/plot';
// Training (docs/TRAINING.md).
export { Trainer, launchWorkers, loadAnnotations, parseAnnotations, listCheckpoints, resolveCheckpoint, readState, type TrainerOptions, type DistributedOptions, type StepEvent, type EpochEvent, type CheckpointEvent, type SkipEvent, type DoneEvent, type TrainerEvent, type Annotation, type TrainerState, type LaunchOptions, type LaunchResult } from './trainer/index';
