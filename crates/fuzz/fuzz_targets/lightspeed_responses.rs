//! Any bytes as each kind of Lightspeed response, through the client's own parsers.
//! See `els_lightspeed::parse::fuzz`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| els_lightspeed::parse::fuzz(data));
