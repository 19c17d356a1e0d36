//! End-to-end tests of sessionward live in `tests/`; this library holds their shared support.
