//! Untrusted addresses, ranges and handles: parsing never panics, accepted values are canonical
//! and round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sessionward_core::{parse_cidr, parse_ip, Handle};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(ip) = parse_ip(&text) {
        assert_eq!(ip, ip.to_canonical(), "IPv4-mapped addresses become IPv4");
        assert_eq!(parse_ip(&ip.to_string()).ok(), Some(ip));
    }
    if let Ok(net) = parse_cidr("fuzz", &text) {
        assert_eq!(net, net.trunc(), "host bits cleared");
        assert_eq!(parse_cidr("fuzz", &net.to_string()).ok(), Some(net));
    }
    if let Ok(handle) = text.parse::<Handle>() {
        assert_eq!(handle.to_string().parse::<Handle>().ok(), Some(handle));
    }
    // Error messages never echo more than a bounded, redacted prefix.
    if let Err(error) = parse_cidr("fuzz", &text) {
        assert!(error.to_string().len() < 400);
    }
});
