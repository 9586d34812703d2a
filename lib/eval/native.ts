// The evaluation code's access to the native addon (frechetDistance, gaussianStatistics,
// trainLinearProbe, tensors, modules), through the one loader in lib/native.ts.
import type { NativeBinding } from '../../binding';
import { binding } from '../native';

export function getBinding(): NativeBinding {
  return binding();
}
