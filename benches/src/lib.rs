//! Shared helpers for scalegemm's benchmarks (input generation).
