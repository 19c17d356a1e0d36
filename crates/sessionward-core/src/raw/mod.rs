//! Everything in the core that needs `unsafe`, and nothing else: the crate denies
//! `unsafe_code` everywhere outside this module, and inside it allows it use by use, each
//! with a `SAFETY` comment. Each part's documentation says why it needs `unsafe` and why its
//! use is sound:
//!
//! - [`clock`]: the coarse realtime clock (`CLOCK_REALTIME_COARSE`), whole seconds for a
//!   sixth of what `SystemTime::now()` costs under a hypervisor;
//! - [`crc`]: the CRC-32 of a token's checked characters by carry-less multiplication,
//!   four loads and no loop instead of a general routine's call, loop and partial block;
//! - [`sha256`]: two SHA-256 compressions with their rounds interleaved, so that a batched
//!   validation hashes two tokens in little more than the time of one;
//! - [`prefetch`]: the CPU's prefetch instructions (a hint that never dereferences), so that
//!   lookups start loading their lines before they need them;
//! - [`slots`]: one huge-page allocation shared by the tables of all shards at one capacity,
//!   each table owning a part of it;
//! - [`fork`]: a `pthread_atfork` child handler, so that the token generator notices a fork
//!   with one load instead of a `getpid` call per token.
//!
//! They are covered by their own unit tests, the engine's model and stress tests,
//! `make memcheck` (the core's unit and engine tests and the model test under valgrind), and
//! `make miri` (this module's tests under Miri, which stops on undefined behaviour; the
//! CRC's and the paired SHA-256's once more with `PCLMULQDQ` and the SHA extensions enabled,
//! which Miri emulates).

pub(crate) mod clock;
pub(crate) mod crc;
pub(crate) mod fork;
pub(crate) mod prefetch;
pub(crate) mod sha256;
pub(crate) mod slots;
