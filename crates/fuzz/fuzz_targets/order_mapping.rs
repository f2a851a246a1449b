//! Any bytes as an Ecwid order (JSON, or the compact binary form) through the money mapping.
//! See `els_core::fuzz::order_mapping`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    els_core::fuzz::order_mapping(data);
});
