// The hot path of the tensor crossing, for value conversion (ivalue_convert.cpp). Kept out of
// common.h so that changing it rebuilds only the files that use it.
#pragma once

#include "common.h"

namespace dove {

// The tensor held by a tensor handle, or null when `value` is not one of ours (recognised by where
// its box lives, never by shape or prototype; see tensor_wrap.cpp). Throws DoveException DISPOSED
// after dispose(). JS thread; the pointer is valid until JS runs again, so copy it (into an IValue)
// at once.
const at::Tensor* wrappedTensor(napi_env env, napi_value value);


}  // namespace dove
