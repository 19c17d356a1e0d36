//! Shared set-up for the sessionward benchmarks: building populated engines and baselines.
