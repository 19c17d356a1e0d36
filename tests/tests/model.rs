//! The engine and a simple reference model must agree on every outcome of random operation
//! sequences: logins, validations from various addresses, clock moves, settings changes, every
//! kind of end, sweeps and listings. The model and the replay live in `sessionward_tests::model`
//! so that the fuzz target replays the same model.

use proptest::prelude::*;
use sessionward_tests::model::{op, Replay};

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 256,
        max_shrink_iters: 2000,
        ..ProptestConfig::default()
    })]

    #[test]
    fn engine_agrees_with_the_model(ops in proptest::collection::vec(op(), 1..120)) {
        let mut harness = Replay::new();
        for op in &ops {
            harness.apply(op).map_err(TestCaseError::fail)?;
        }
    }
}
