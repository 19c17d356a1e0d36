//! Shared support for sessionward's end-to-end tests: a reference model of the session policy
//! and proptest strategies for operation sequences. The tests themselves live in `tests/`.

pub mod model;
