// Graph simplifications applied before quantization.
#pragma once

#include "pqtool/model.hpp"

namespace pqtool {

/// Folds every inference-mode BatchNormalization that directly follows a Conv into that Conv's
/// weight and bias, when the Conv's output feeds only the BatchNormalization and the Conv's
/// weight and bias are float32 constants used by that Conv alone:
///
///   s_o  = γ_o / √(var_o + ε)
///   W'_o = W_o · s_o              (every weight of output channel o)
///   b'_o = (b_o − μ_o) · s_o + β_o
///
/// Conv(x, W', b') equals BatchNormalization(Conv(x, W, b)) in exact arithmetic. Quantizing W'
/// rather than W also weights each channel's error by what the network really computes.
/// Returns the number of BatchNormalization nodes removed.
int fold_batch_norms(Model& model);

}  // namespace pqtool
